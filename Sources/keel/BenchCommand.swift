// `keel bench …`: benchmarks, not tests. They print what they measured; tools/bench runs
// them beside the machine's own limits (dd, lz4) and BENCHMARKS.md records the numbers.
import ArgumentParser
import Foundation
import LogStorage
import NIOCore
import Records

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a benchmark (tools/bench runs them beside the machine's limits).",
        subcommands: [BenchStorage.self, BenchSample.self, BenchProduce.self]
    )
}

/// Writes the benchmark's record values, one per line, for `lz4 -b1` to compress.
struct BenchSample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sample",
        abstract: "Write the benchmark's 1 KiB JSON-like values to a file (for lz4 -b1)."
    )

    @Option(help: "How many bytes to write.")
    var bytes = 64 << 20

    @Option(help: "The file to write.")
    var output: String

    func run() throws {
        var rng = SplitMix64(seed: 42)
        var data = [UInt8]()
        data.reserveCapacity(bytes + 2048)
        var index = 0
        while data.count < bytes {
            data += BenchData.record(index, rng: &rng)
            data.append(UInt8(ascii: "\n"))
            index += 1
        }
        guard FileManager.default.createFile(atPath: output, contents: Data(data)) else {
            throw CommandError("cannot write \(output); check the directory exists and is writable")
        }
    }
}

/// Storage engine throughput: LZ4 compression, append (fsync per batch, group commit,
/// no fsync), sequential reads, and reopen after a clean and an unclean shutdown.
struct BenchStorage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Measure the storage engine: LZ4, append, read, reopen."
    )

    @Option(help: "Directory for the benchmark's partition logs (removed first).")
    var directory: String

    @Option(help: "On-disk size of the partition written for the no-fsync, read and reopen runs, in MiB.")
    var logMiB = 1024

    @Option(help: "On-disk bytes written by each fsync run, in MiB.")
    var fsyncMiB = 256

    @Option(help: "Records per batch (1 KiB each; 176 makes LZ4 batches of about 64 KiB).")
    var recordsPerBatch = 176

    @Option(help: "Group commit: flush once this many KiB have been appended.")
    var groupCommitKiB = 1024

    func run() throws {
        let pool = try makeBatchPool()
        let batchBytes = pool.batches.reduce(0) { $0 + $1.readableBytes } / pool.batches.count
        print(
            "data: \(recordsPerBatch) records of 1 KiB per batch; LZ4 batch ≈ \(batchBytes) bytes; "
                + "ratio \(String(format: "%.2f", pool.ratio))"
        )
        print("lz4 compress (Swift → liblz4, 64 KiB frame blocks, level 1-equivalent fast): "
            + "\(mbps(pool.compressBytes, pool.compressSeconds)) MB/s of input")
        print("lz4 decompress (Swift → liblz4): \(mbps(pool.compressBytes, pool.decompressSeconds)) MB/s of output")

        // Each append run is preceded by its peer: the same bytes written by plain pwrite and
        // fdatasync at the same write size and sync cadence, so the ratio compares like with
        // like on this (noisy, shared) disk.
        let fsyncBytes = fsyncMiB << 20
        let rawEach = try rawRun(bytes: fsyncBytes, writeBytes: batchBytes, syncEveryBytes: 1)
        let perBatch = try appendRun(name: "fsync-each", pool: pool, bytes: fsyncBytes, policy: .fsync, flushEveryBytes: 1)
        print("append, fsync after every batch (\(batchBytes) B writes): \(perBatch.line)")
        print("  peer: pwrite + fdatasync per \(batchBytes) B write: \(mbps(fsyncBytes, rawEach)) MB/s; "
            + "keel / peer = \(ratio(perBatch.seconds, rawEach))")
        let rawGroup = try rawRun(bytes: fsyncBytes, writeBytes: batchBytes, syncEveryBytes: groupCommitKiB << 10)
        let group = try appendRun(
            name: "group", pool: pool, bytes: fsyncBytes, policy: .fsync, flushEveryBytes: groupCommitKiB << 10)
        print("append, group commit (one fsync per \(groupCommitKiB) KiB): \(group.line)")
        print("  peer: pwrite per \(batchBytes) B, fdatasync per \(groupCommitKiB) KiB: \(mbps(fsyncBytes, rawGroup)) MB/s; "
            + "keel / peer = \(ratio(group.seconds, rawGroup))")
        let noSync = try appendRun(name: "nosync", pool: pool, bytes: logMiB << 20, policy: .none, flushEveryBytes: 0)
        print("append, no fsync (flush policy none), \(logMiB) MiB: \(noSync.line)")

        try readRuns(name: "nosync")
        try reopenRuns(name: "nosync")
        try? FileManager.default.removeItem(atPath: directory)
    }

    struct BatchPool {
        var batches: [ByteBuffer]
        var ratio: Double
        var compressBytes: Int
        var compressSeconds: Double
        var decompressSeconds: Double
    }

    /// 64 distinct LZ4 batches, cycled by the append runs; compression is timed here.
    func makeBatchPool() throws -> BatchPool {
        var rng = SplitMix64(seed: 42)
        var batches: [ByteBuffer] = []
        var sections: [ByteBuffer] = []
        var index = 0
        for _ in 0..<64 {
            var builder = RecordBatchBuilder(capacity: recordsPerBatch * 1100)
            for _ in 0..<recordsPerBatch {
                let value = ByteBuffer(bytes: BenchData.record(index, rng: &rng))
                builder.append(timestamp: 1_764_000_000_000 + Int64(index), key: nil, value: value)
                index += 1
            }
            let uncompressed = try builder.build(codec: .none)
            batches.append(try RecordBatch.compress(uncompressed, at: 0, codec: .lz4))
            // The records section alone, for timing LZ4 by itself.
            sections.append(uncompressed.getSlice(at: RecordBatchHeader.size, length: uncompressed.readableBytes - RecordBatchHeader.size)!)
        }
        // Compression speed: the records sections through LZ4Frame, repeated for ~1 s of work.
        var compressed = ByteBufferAllocator().buffer(capacity: LZ4Frame.compressBound(sections[0].readableBytes * 2))
        var inputBytes = 0
        var outputBytes = 0
        let rounds = 16
        let start = DispatchTime.now()
        for _ in 0..<rounds {
            for section in sections {
                compressed.clear()
                outputBytes += try LZ4Frame.compress(section, into: &compressed)
                inputBytes += section.readableBytes
            }
        }
        let compressSeconds = seconds(since: start)
        // Decompression speed over the same frames.
        var frames: [ByteBuffer] = []
        for section in sections {
            var frame = ByteBufferAllocator().buffer(capacity: LZ4Frame.compressBound(section.readableBytes))
            _ = try LZ4Frame.compress(section, into: &frame)
            frames.append(frame)
        }
        var output = ByteBufferAllocator().buffer(capacity: sections[0].readableBytes * 2)
        let decompressStart = DispatchTime.now()
        for _ in 0..<rounds {
            for frame in frames {
                output.clear()
                _ = try LZ4Frame.decompress(frame, outputBytesMax: 64 << 20, into: &output)
            }
        }
        let decompressSeconds = seconds(since: decompressStart)
        return BatchPool(
            batches: batches, ratio: Double(inputBytes) / Double(outputBytes), compressBytes: inputBytes,
            compressSeconds: compressSeconds, decompressSeconds: decompressSeconds)
    }

    /// Appends batches from the pool until `bytes` are on disk; flushes once `flushEveryBytes`
    /// have accumulated (1 = after every batch, 0 = only at the end).
    func appendRun(name: String, pool: BatchPool, bytes: Int, policy: FlushPolicy, flushEveryBytes: Int) throws
        -> (line: String, seconds: Double)
    {
        let path = directory + "/" + name
        try? FileManager.default.removeItem(atPath: path)
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        var config = LogConfig()
        config.flushPolicy = policy
        var batches = pool.batches
        let (log, _) = try PartitionLog.open(directory: path, config: config, io: PosixFileIO(), now: now())
        var written = 0
        var sinceFlush = 0
        var records = 0
        var flushes = 0
        let start = DispatchTime.now()
        var i = 0
        while written < bytes {
            let result = try log.append(&batches[i % batches.count], leaderEpoch: 1, now: now())
            written += result.bytes.value
            sinceFlush += result.bytes.value
            records += recordsPerBatch
            if flushEveryBytes > 0 && sinceFlush >= flushEveryBytes {
                _ = try log.flush()
                flushes += 1
                sinceFlush = 0
            }
            i += 1
        }
        _ = try log.flush()
        let elapsed = seconds(since: start)
        try log.close()
        let line = "\(mbps(written, elapsed)) MB/s on disk, \(Int(Double(records) / elapsed)) records/s, "
            + "\(mbps(records * 1024, elapsed)) MB/s of record values, \(flushes) fsync calls"
        return (line, elapsed * Double(bytes) / Double(written))
    }

    /// The disk's own speed for a write pattern: `bytes` in `writeBytes` pwrites, one
    /// fdatasync per `syncEveryBytes`. Returns seconds.
    func rawRun(bytes: Int, writeBytes: Int, syncEveryBytes: Int) throws -> Double {
        let path = directory + "/raw.peer"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0o644)
        guard fd >= 0 else { throw CommandError("cannot create \(path)") }
        defer {
            close(fd)
            unlink(path)
        }
        let block = [UInt8](repeating: 0x5A, count: writeBytes)
        var written = 0
        var sinceSync = 0
        let start = DispatchTime.now()
        while written < bytes {
            let n = block.withUnsafeBytes { pwrite(fd, $0.baseAddress, writeBytes, off_t(written)) }
            guard n == writeBytes else { throw CommandError("pwrite to \(path) failed") }
            written += n
            sinceSync += n
            if sinceSync >= syncEveryBytes {
                fdatasync(fd)
                sinceSync = 0
            }
        }
        fdatasync(fd)
        return seconds(since: start)
    }

    func ratio(_ keelSeconds: Double, _ peerSeconds: Double) -> String {
        String(format: "%.2f", peerSeconds / keelSeconds)
    }

    /// Sequential reads of the whole log: file slices (what a fetch sends with sendfile,
    /// headers walked) and verified reads (bytes in memory, every CRC checked).
    func readRuns(name: String) throws {
        let path = directory + "/" + name
        let (log, _) = try PartitionLog.open(directory: path, config: LogConfig(), io: PosixFileIO(), now: now())
        defer { try? log.close() }
        var offset = log.logStartOffset
        var bytes = 0
        var start = DispatchTime.now()
        while offset < log.logEndOffset {
            let result = try log.read(from: offset, maxBytes: 1 << 20)
            bytes += result.byteCount.value
            offset = result.nextOffset
        }
        print("read, file slices (index + header walk, 1 MiB per read): \(mbps(bytes, seconds(since: start))) MB/s")
        offset = log.logStartOffset
        bytes = 0
        start = DispatchTime.now()
        while offset < log.logEndOffset {
            let result = try log.readVerified(from: offset, maxBytes: 1 << 20)
            bytes += result.bytes.readableBytes
            offset = result.nextOffset
        }
        print("read, verified (pread into memory + CRC of every batch): \(mbps(bytes, seconds(since: start))) MB/s")
    }

    /// Reopen after a clean close (nothing to scan) and after an unclean one (checkpoint
    /// removed, so the whole log is scanned and every CRC checked).
    func reopenRuns(name: String) throws {
        let path = directory + "/" + name
        var start = DispatchTime.now()
        var (log, report) = try PartitionLog.open(directory: path, config: LogConfig(), io: PosixFileIO(), now: now())
        let clean = seconds(since: start)
        let size = log.segmentInfos.reduce(0) { $0 + $1.size.value }
        try log.close()
        print(
            "reopen after clean shutdown, \(size >> 20) MiB in \(log.segmentInfos.count) segment(s): "
                + "\(String(format: "%.3f", clean)) s (scanned from: \(report.scannedFrom.map { "\($0)" } ?? "nothing"))")
        try FileManager.default.removeItem(atPath: path + "/log.checkpoint")
        start = DispatchTime.now()
        (log, report) = try PartitionLog.open(directory: path, config: LogConfig(), io: PosixFileIO(), now: now())
        let unclean = seconds(since: start)
        try log.close()
        print(
            "reopen after unclean shutdown (no checkpoint; full scan, every CRC): \(String(format: "%.3f", unclean)) s "
                + "(scanned from: \(report.scannedFrom.map { "\($0)" } ?? "nothing"))")
    }

    func now() -> Milliseconds { Milliseconds(Int64(Date().timeIntervalSince1970 * 1000)) }

    func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }

    func mbps(_ bytes: Int, _ seconds: Double) -> String {
        String(format: "%.0f", Double(bytes) / seconds / 1e6)
    }
}
