// keel-crash-writer: the child process of the storage crash test (DESIGN.md, Testing
// layer 3). `keel-crash-writer <dir> <seed>` opens the partition log in <dir> under the
// fsync policy and appends forever; after every flush it prints `durable <offset>`
// (the log's durableEndOffset) on its own line and flushes stdout, so that the parent,
// which kills it with SIGKILL at a random moment, knows what it must find after reopening.
//
// The batch that lands at offset X is a pure function of (seed, X): `CrashWorkload.batch`,
// which the crash test imports (`@testable import keel_crash_writer`) so that the parent
// can regenerate every batch and compare bytes.

import Glibc
import LogStorage
import NIOCore
import Records

/// The deterministic content of the crash test's log.
enum CrashWorkload {
    /// The time the writer passes as `now` (the log never reads the clock).
    static let baseTimeMs: Int64 = 1_700_000_000_000

    /// The log configuration both sides use: small segments, so that rolls happen often.
    static let config = LogConfig(segmentBytesMax: 48 * 1024, indexIntervalBytes: 1024)

    /// SplitMix64, a tiny seeded generator.
    struct Generator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The batch at `offset`: 1–5 records (an opaque payload of 0–599 bytes), epoch 1.
    static func batch(seed: UInt64, offset: Offset) -> ByteBuffer {
        var generator = Generator(state: seed ^ (UInt64(bitPattern: offset.value) &* 0xD6E8_FEB8_6659_FD93))
        let records = Int32(1 + generator.next() % 5)
        let payloadBytes = Int(generator.next() % 600)
        let header = RecordBatchHeader(
            baseOffset: offset.value,
            batchLength: Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + payloadBytes),
            partitionLeaderEpoch: 1,
            lastOffsetDelta: records - 1,
            baseTimestamp: baseTimeMs + offset.value,
            maxTimestamp: baseTimeMs + offset.value + Int64(records) - 1,
            recordsCount: records)
        var buffer = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.size + payloadBytes)
        header.write(to: &buffer)
        for _ in 0..<payloadBytes { buffer.writeInteger(UInt8(truncatingIfNeeded: generator.next())) }
        RecordBatch.updateCRC(in: &buffer, at: 0)
        return buffer
    }
}

@main
enum CrashWriter {
    static func main() {
        let arguments = CommandLine.arguments
        guard arguments.count == 3, let seed = UInt64(arguments[2]) else {
            writeLine("usage: keel-crash-writer <dir> <seed>", to: 2)
            exit(2)
        }
        do throws(LogError) {
            try run(directory: arguments[1], seed: seed)
        } catch {
            writeLine("keel-crash-writer: \(error)", to: 2)
            exit(1)
        }
    }

    /// Writes one line with one write(2): unbuffered, so a line is out before the next append.
    static func writeLine(_ line: String, to descriptor: Int32) {
        let bytes = Array((line + "\n").utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress! + done, $0.count - done) }
            if n <= 0 { return }
            done += n
        }
    }

    static func run(directory: String, seed: UInt64) throws(LogError) {
        let now = Milliseconds(CrashWorkload.baseTimeMs)
        let (log, _) = try PartitionLog.open(
            directory: directory, config: CrashWorkload.config, io: PosixFileIO(), now: now)
        var groups = CrashWorkload.Generator(state: seed ^ 0x6772_6F75_7073)
        while true {
            let appends = 1 + Int(groups.next() % 8)
            for _ in 0..<appends {
                var batch = CrashWorkload.batch(seed: seed, offset: log.logEndOffset)
                _ = try log.append(&batch, leaderEpoch: 1, now: now)
            }
            let durable = try log.flush()
            writeLine("durable \(durable.value)", to: 1)
        }
    }
}
