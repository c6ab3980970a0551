import Foundation
import Glibc
import LogStorage
import NIOCore
import Records
import XCTest

/// A batch with `records` records, an opaque payload of `payloadBytes` bytes and
/// `timestamp` as both base and max timestamp; baseOffset 0 (the log assigns it).
func makeBatch(records: Int32 = 1, timestamp: Int64 = 1_000, payloadBytes: Int = 100, fill: UInt8 = 0xAB)
    -> ByteBuffer
{
    let header = RecordBatchHeader(
        baseOffset: 0,
        batchLength: Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + payloadBytes),
        lastOffsetDelta: records - 1,
        baseTimestamp: timestamp,
        maxTimestamp: timestamp,
        recordsCount: records)
    var buffer = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.size + payloadBytes)
    header.write(to: &buffer)
    buffer.writeRepeatingByte(fill, count: payloadBytes)
    RecordBatch.updateCRC(in: &buffer, at: 0)
    return buffer
}

/// A fresh directory under /tmp, removed by `remove()`.
final class TemporaryDirectory {
    let path: String

    init(_ name: String = #function) {
        let safe = name.filter { $0.isLetter || $0.isNumber }
        path = "/tmp/keel-logstorage-\(safe)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    var partition: String { path + "/p-0" }

    func remove() { try? FileManager.default.removeItem(atPath: path) }
}

/// `PosixFileIO` with counters and injectable faults.
final class FaultyFileIO: FileIO {
    let real = PosixFileIO()
    /// fsyncs of files (not directories).
    var fileSyncs = 0
    var directorySyncs = 0
    var writes = 0
    /// When set, writes succeed until this many more bytes were written; the write that
    /// crosses it is torn (its first bytes land) and fails with ENOSPC.
    var writeBytesLeft: Int?
    /// When set, every fsync fails with this errno.
    var syncErrno: Int32?
    var open = Set<Int32>()

    func open(_ path: String, mode: FileOpenMode) throws(FileIOError) -> IOHandle {
        let handle = try real.open(path, mode: mode)
        open.insert(handle.descriptor)
        return handle
    }

    func read(_ file: IOHandle, at position: FilePosition, count: Int, into buffer: inout ByteBuffer)
        throws(FileIOError) -> Int
    {
        try real.read(file, at: position, count: count, into: &buffer)
    }

    func write(_ file: IOHandle, at position: FilePosition, from buffer: ByteBuffer) throws(FileIOError) {
        writes += 1
        if let left = writeBytesLeft {
            if buffer.readableBytes > left {
                if left > 0 {
                    try real.write(file, at: position, from: buffer.getSlice(at: buffer.readerIndex, length: left)!)
                }
                writeBytesLeft = 0
                throw FileIOError(operation: .write, path: file.path, errno: ENOSPC)
            }
            writeBytesLeft = left - buffer.readableBytes
        }
        try real.write(file, at: position, from: buffer)
    }

    func sync(_ file: IOHandle) throws(FileIOError) {
        if let syncErrno { throw FileIOError(operation: .sync, path: file.path, errno: syncErrno) }
        fileSyncs += 1
        try real.sync(file)
    }

    func truncate(_ file: IOHandle, to size: ByteCount) throws(FileIOError) { try real.truncate(file, to: size) }
    func size(of file: IOHandle) throws(FileIOError) -> ByteCount { try real.size(of: file) }

    func close(_ file: IOHandle) {
        open.remove(file.descriptor)
        real.close(file)
    }

    func listDirectory(_ path: String) throws(FileIOError) -> [String] { try real.listDirectory(path) }
    func makeDirectory(_ path: String) throws(FileIOError) { try real.makeDirectory(path) }
    func remove(_ path: String) throws(FileIOError) { try real.remove(path) }
    func rename(_ path: String, to newPath: String) throws(FileIOError) { try real.rename(path, to: newPath) }

    func syncDirectory(_ path: String) throws(FileIOError) {
        if let syncErrno { throw FileIOError(operation: .syncDirectory, path: path, errno: syncErrno) }
        directorySyncs += 1
        try real.syncDirectory(path)
    }

    /// What a crashed process leaves: every file closed, nothing flushed or checkpointed.
    func crash() {
        for descriptor in open { _ = Glibc.close(descriptor) }
        open.removeAll()
    }
}

/// Raw file helpers for breaking things on purpose.
enum Disk {
    static func bytes(_ path: String) -> [UInt8] { FileManager.default.contents(atPath: path).map(Array.init) ?? [] }

    static func write(_ bytes: [UInt8], to path: String) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
    }

    static func flipByte(_ path: String, at position: Int) {
        var contents = bytes(path)
        contents[position] ^= 0xFF
        write(contents, to: path)
    }

    static func size(_ path: String) -> Int { bytes(path).count }

    static func truncate(_ path: String, to size: Int) { _ = Glibc.truncate(path, off_t(size)) }
}

extension XCTestCase {
    /// Opens a log, failing the test with the error if it cannot.
    func openLog(
        _ directory: String, config: LogConfig = LogConfig(), io: any FileIO = PosixFileIO(),
        now: Int64 = 1_000, file: StaticString = #filePath, line: UInt = #line
    ) throws -> (PartitionLog, RecoveryReport) {
        let (log, report) = try PartitionLog.open(directory: directory, config: config, io: io, now: Milliseconds(now))
        return (log, report)
    }

    /// Every batch of the log, checked by CRC, as (first offset, bytes).
    func readAll(_ log: PartitionLog) throws -> [(Offset, [UInt8])] {
        var batches: [(Offset, [UInt8])] = []
        var offset = log.logStartOffset
        while offset < log.logEndOffset {
            let read = try log.readVerified(from: offset, maxBytes: 64 * 1024)
            var bytes = read.bytes
            while bytes.readableBytes > 0 {
                let header = try RecordBatchHeader.read(from: bytes, at: bytes.readerIndex)
                batches.append((header.firstOffset, bytes.readBytes(length: header.totalSize)!))
            }
            XCTAssertGreaterThan(read.nextOffset, offset)
            offset = read.nextOffset
        }
        return batches
    }
}
