import Foundation
import LogStorage
import NIOCore
import Records
import XCTest

final class ResetTests: XCTestCase {
    let small = LogConfig(segmentBytesMax: 2_000, indexIntervalBytes: 300)

    /// A reset removes every segment and restarts the log empty at the given offset; appends continue from
    /// there, and a reopen (clean or not) finds the same log.
    func testResetRestartsTheLogEmptyAtTheOffset() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition, config: small)
        for i in 0..<40 {
            var batch = makeBatch(records: 2, payloadBytes: 100, fill: UInt8(i))
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
        try log.flush()
        XCTAssertThrowsError(try log.reset(startingAt: Offset(10), now: Milliseconds(0)), "below the log end")
        try log.reset(startingAt: Offset(500), now: Milliseconds(0))
        XCTAssertEqual(log.logStartOffset, Offset(500))
        XCTAssertEqual(log.logEndOffset, Offset(500))
        XCTAssertEqual(log.durableEndOffset, Offset(500))
        XCTAssertEqual(log.segmentInfos.map(\.baseOffset), [Offset(500)])
        var batch = makeBatch(records: 3)
        XCTAssertEqual(try log.append(&batch, leaderEpoch: 2, now: Milliseconds(0)).firstOffset, Offset(500))
        try log.flush()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.partition).filter { $0.hasSuffix(".log") }
        XCTAssertEqual(files, ["00000000000000000500.log"])
        let (reopened, report) = try openLog(dir.partition, config: small)
        XCTAssertEqual(reopened.logStartOffset, Offset(500))
        XCTAssertEqual(reopened.logEndOffset, Offset(503))
        XCTAssertTrue(report.warnings.isEmpty, "\(report)")
        try reopened.close()
    }

    /// A log start persisted past the data (a reset that crashed after its checkpoint, before it replaced the
    /// segments) makes the next open restart the log empty at that start.
    func testOpenRestartsALogWhoseStartIsPastItsData() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition, config: small)
        for i in 0..<10 {
            var batch = makeBatch(records: 2, fill: UInt8(i))
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
        try log.close()
        // A reset's commit point: the checkpoint with the new start (format in PartitionLog.swift).
        var checkpoint = ByteBuffer()
        checkpoint.writeInteger(UInt32(0x4B4C_4350))
        checkpoint.writeInteger(UInt16(1))
        checkpoint.writeInteger(Int64(300))
        checkpoint.writeInteger(Int64(300))
        checkpoint.writeInteger(CRC32C.checksum(checkpoint, at: 0, length: 22))
        FileManager.default.createFile(
            atPath: dir.partition + "/log.checkpoint", contents: Data(checkpoint.readableBytesView))
        let (reopened, report) = try openLog(dir.partition, config: small)
        XCTAssertEqual(reopened.logStartOffset, Offset(300))
        XCTAssertEqual(reopened.logEndOffset, Offset(300))
        XCTAssertEqual(reopened.segmentInfos.map(\.baseOffset), [Offset(300)])
        XCTAssertFalse(report.warnings.isEmpty)
        try reopened.close()
    }
}
