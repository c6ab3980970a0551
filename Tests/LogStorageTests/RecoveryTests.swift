import Foundation
import LogStorage
import NIOCore
import Records
import XCTest

final class RecoveryTests: XCTestCase {
    let small = LogConfig(segmentBytesMax: 2_000, indexIntervalBytes: 300)

    /// Fills a log with `count` 2-record batches of 161+ bytes over several segments.
    func fill(_ log: PartitionLog, count: Int, payloadBytes: Int = 150) throws {
        for i in 0..<count {
            var batch = makeBatch(records: 2, timestamp: Int64(i), payloadBytes: payloadBytes, fill: UInt8(i & 0xFF))
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
    }

    /// After a clean close, reopening scans nothing, rebuilds nothing and fsyncs nothing.
    func testCleanReopenDoesNotRescan() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, first) = try openLog(dir.partition, config: small)
        XCTAssertEqual(first.segmentsFound, 0)
        try fill(log, count: 100)
        try log.close()
        let io = FaultyFileIO()
        let (reopened, report) = try openLog(dir.partition, config: small, io: io)
        XCTAssertTrue(report.wasClean, report.description)
        XCTAssertNil(report.scannedFrom)
        XCTAssertEqual(report.bytesScanned, .zero)
        XCTAssertEqual(report.segmentsFound, reopened.segmentInfos.count)
        XCTAssertEqual(io.writes + io.fileSyncs + io.directorySyncs, 0)
        XCTAssertEqual(reopened.logEndOffset, Offset(200))
        XCTAssertEqual(reopened.recoveryPoint, Offset(200))
        XCTAssertEqual(try readAll(reopened).count, 100)
        try reopened.close()
    }

    /// A clean reopen of a log too small for any index entry writes nothing either.
    func testCleanReopenOfATinyLogWritesNothing() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition)
        try fill(log, count: 2)
        try log.close()
        let io = FaultyFileIO()
        let (reopened, report) = try openLog(dir.partition, io: io)
        XCTAssertTrue(report.wasClean, report.description)
        XCTAssertEqual(io.writes + io.fileSyncs + io.directorySyncs, 0)
        XCTAssertEqual(try readAll(reopened).count, 2)
        try reopened.close()
    }

    /// After a crash, only the batches past the recovery point are scanned, and a byte
    /// flipped in one of them cuts the log at that batch.
    func testFlippedByteInTailSegmentIsCutByRecovery() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let io = FaultyFileIO()
        let (log, _) = try openLog(dir.partition, config: small, io: io)
        try fill(log, count: 40)
        try log.roll(now: Milliseconds(0))
        try log.flush()  // a flush after a roll persists the recovery point (offset 80)
        try fill(log, count: 6)
        try log.flush()
        io.crash()
        let active = try XCTUnwrap(log.segmentInfos.last)
        XCTAssertEqual(active.baseOffset, Offset(80))
        Disk.flipByte(active.path, at: 3 * 211 + 100)  // inside the 4th batch (offsets 86, 87)
        let (reopened, report) = try openLog(dir.partition, config: small)
        XCTAssertEqual(report.recoveryPoint, Offset(80))
        XCTAssertEqual(report.scannedFrom, Offset(80))
        XCTAssertEqual(report.batchesScanned, 3)
        XCTAssertEqual(report.truncations.count, 1)
        XCTAssertEqual(report.truncations.first?.position, FilePosition(3 * 211))
        XCTAssertEqual(report.bytesTruncated.value, 3 * 211)
        XCTAssertTrue(report.truncations.first?.reason.contains("CRC") ?? false, report.description)
        XCTAssertEqual(reopened.logEndOffset, Offset(86))
        XCTAssertEqual(try readAll(reopened).count, 43)
        try reopened.close()
    }

    /// A byte flipped below the recovery point is not scanned on open, but a verified
    /// read names the segment, position and offset and never returns the batch.
    func testFlippedByteInMiddleSegmentIsCaughtByVerifiedRead() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition, config: small)
        try fill(log, count: 60)
        try log.close()
        let middle = log.segmentInfos[2]
        Disk.flipByte(middle.path, at: 211 + 150)  // the second batch of the segment
        let (reopened, report) = try openLog(dir.partition, config: small)
        XCTAssertTrue(report.wasClean)
        let second = middle.baseOffset.advanced(by: 2)
        XCTAssertThrowsError(try reopened.readVerified(from: middle.baseOffset, maxBytes: 100_000)) { error in
            guard case .corruptBatch(let segment, let position, let offset, let reason) = error as? LogError else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(segment, middle.path)
            XCTAssertEqual(position, FilePosition(211))
            XCTAssertEqual(offset, second)
            XCTAssertTrue(reason.contains("CRC"))
        }
        // The batch before it is still served on its own.
        XCTAssertEqual(try reopened.readVerified(from: middle.baseOffset, maxBytes: 1).batchCount, 1)
        XCTAssertThrowsError(try reopened.readVerified(from: second, maxBytes: 1))
        try reopened.close()
    }

    /// A batch torn by a crash (half written) is cut on reopen, and appends continue.
    func testTornBatchAtTheEndIsCut() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let io = FaultyFileIO()
        let (log, _) = try openLog(dir.partition, io: io)
        try fill(log, count: 5)
        try log.flush()
        io.crash()
        let path = log.segmentInfos[0].path
        let half = makeBatch(records: 2, payloadBytes: 150).getBytes(at: 0, length: 100)!
        Disk.write(Disk.bytes(path) + half, to: path)
        let (reopened, report) = try openLog(dir.partition)
        XCTAssertEqual(report.bytesTruncated.value, 100)
        XCTAssertEqual(reopened.logEndOffset, Offset(10))
        var batch = makeBatch()
        XCTAssertEqual(try reopened.append(&batch, leaderEpoch: 1, now: Milliseconds(0)).firstOffset, Offset(10))
        try reopened.close()
    }

    /// Missing, garbage and truncated index files are rebuilt from the log, reported, and
    /// the next reopen is clean.
    func testMissingOrCorruptIndexesAreRebuilt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition, config: small)
        try fill(log, count: 60)
        try log.close()
        let segments = log.segmentInfos
        func stem(_ info: SegmentInfo) -> String { String(info.path.dropLast(4)) }
        try FileManager.default.removeItem(atPath: stem(segments[1]) + ".index")
        Disk.write([0, 0, 0, 9, 0, 0, 0x7F, 0xFF], to: stem(segments[2]) + ".index")
        Disk.truncate(stem(segments[3]) + ".timeindex", to: 5)
        Disk.truncate(stem(segments[segments.count - 1]) + ".index", to: 0)
        let (reopened, report) = try openLog(dir.partition, config: small)
        XCTAssertEqual(
            Set(report.indexesRebuilt.map(\.segment)),
            Set([1, 2, 3, segments.count - 1].map { segments[$0].path }), report.description)
        XCTAssertEqual(reopened.segmentInfos, segments)
        for value in 0..<reopened.logEndOffset.value {
            let slice = try XCTUnwrap(reopened.read(from: Offset(value), maxBytes: 1).slices.first)
            XCTAssertTrue(slice.firstOffset.value <= value && value <= slice.lastOffset.value)
        }
        XCTAssertEqual(Disk.size(stem(segments[2]) + ".index"), segments[2].indexEntries * 8)
        try reopened.close()
        let (again, clean) = try openLog(dir.partition, config: small)
        XCTAssertTrue(clean.wasClean, clean.description)
        try again.close()
    }

    /// Leftover temp files and orphan index files are removed and reported.
    func testLeftoverFilesAreRemoved() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition)
        try fill(log, count: 3)
        try log.close()
        Disk.write([1, 2, 3], to: dir.partition + "/log.checkpoint.tmp")
        Disk.write([], to: dir.partition + "/00000000000000000099.index")
        let (reopened, report) = try openLog(dir.partition)
        XCTAssertEqual(Set(report.filesRemoved), ["log.checkpoint.tmp", "00000000000000000099.index"])
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.partition + "/log.checkpoint.tmp"))
        XCTAssertEqual(reopened.logEndOffset, Offset(6))
        try reopened.close()
    }

    /// A file named like a segment with a bad base offset, and a segment whose first
    /// batch differs from its name, are refused with typed errors.
    func testBadSegmentNamesAreTypedErrors() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition)
        try fill(log, count: 3)
        try log.close()
        let zero = dir.partition + "/00000000000000000000"
        try FileManager.default.moveItem(atPath: zero + ".log", toPath: dir.partition + "/00000000000000000005.log")
        XCTAssertThrowsError(try openLog(dir.partition)) { error in
            guard case .segmentBaseMismatch(_, Offset(0)) = error as? LogError else {
                return XCTFail("unexpected \(error)")
            }
        }
        Disk.write([], to: dir.partition + "/12ab.log")
        XCTAssertThrowsError(try openLog(dir.partition)) { error in
            XCTAssertEqual(error as? LogError, .invalidSegmentName("12ab.log"))
        }
    }

    /// A corrupt checkpoint is reported and every segment is scanned instead.
    func testCorruptCheckpointFallsBackToAFullScan() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition, config: small)
        try fill(log, count: 30)
        try log.close()
        Disk.flipByte(dir.partition + "/log.checkpoint", at: 10)
        let (reopened, report) = try openLog(dir.partition, config: small)
        XCTAssertNotNil(report.checkpointProblem)
        XCTAssertEqual(report.batchesScanned, 30)
        XCTAssertEqual(reopened.logEndOffset, Offset(60))
        try reopened.close()
    }

    /// The crash test's flake (seed 4228325486: "the log ends at 5735, below the recovery
    /// point 5752"): when the recovery point falls exactly on an offset index entry, the
    /// scan resumes at that entry, and a torn first batch there must cut the log at the
    /// recovery point, not reset its end to the segment's base offset.
    ///
    /// Sequence: a clean close leaves the recovery point at offset 4 (position 422, where
    /// the 300-byte index interval puts an entry); the batch at 4 is appended and a flush
    /// begins, which writes that index entry; the process dies before the fsync, and the
    /// disk keeps the index page but tears the batch.
    func testTornBatchAtAnIndexedRecoveryPointCutsThere() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (first, _) = try openLog(dir.partition, config: small)
        try fill(first, count: 2)
        try first.close()
        let io = FaultyFileIO()
        let (log, _) = try openLog(dir.partition, config: small, io: io)
        XCTAssertEqual(log.recoveryPoint, Offset(4))
        try fill(log, count: 2)
        _ = try XCTUnwrap(try log.beginFlush())  // writes the index entry for offset 4; no fsync runs
        io.crash()
        let path = log.segmentInfos[0].path
        XCTAssertEqual(Disk.size(dir.partition + "/" + "00000000000000000000.index"), 8, "one entry (4 at 422)")
        Disk.truncate(path, to: 2 * 211 + 100)

        let (reopened, report) = try openLog(dir.partition, config: small)
        XCTAssertEqual(report.recoveryPoint, Offset(4))
        XCTAssertEqual(report.warnings, [], report.description)
        XCTAssertEqual(report.truncations.map(\.position), [FilePosition(2 * 211)], report.description)
        XCTAssertEqual(reopened.logEndOffset, Offset(4), report.description)
        XCTAssertEqual(reopened.segmentInfos[0].nextOffset, Offset(4))
        var batch = makeBatch(records: 2, payloadBytes: 150)
        XCTAssertEqual(try reopened.append(&batch, leaderEpoch: 1, now: Milliseconds(0)).firstOffset, Offset(4))
        try reopened.flush()
        XCTAssertEqual(try readAll(reopened).map(\.0), [Offset(0), Offset(2), Offset(4)])
        try reopened.close()
        let (again, againReport) = try openLog(dir.partition, config: small)
        XCTAssertTrue(againReport.wasClean, againReport.description)
        XCTAssertEqual(again.logEndOffset, Offset(6))
        try again.close()
    }

    /// Index files are never fsynced, so a power loss can leave one older than its log:
    /// here the entries from before a Raft truncation, whose rewrite was lost. A scan that
    /// resumes at such an entry and stops below the recovery point must not cut durable
    /// batches: it rescans the whole segment, keeps every batch and rebuilds the index.
    func testStaleIndexEntryBelowTheRecoveryPointIsNotTrusted() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition, config: small)
        try fill(log, count: 4)  // 211-byte batches; an index entry for offset 4 at 422
        try log.flush()
        let indexPath = dir.partition + "/00000000000000000000.index"
        let timeIndexPath = dir.partition + "/00000000000000000000.timeindex"
        try log.close()
        let staleIndex = Disk.bytes(indexPath)
        let staleTimeIndex = Disk.bytes(timeIndexPath)
        XCTAssertEqual(staleIndex.count, 8)
        let (again, _) = try openLog(dir.partition, config: small)
        try again.truncate(from: Offset(2))
        try fill(again, count: 4, payloadBytes: 50)  // 111-byte batches from position 211
        try again.close()
        XCTAssertNotEqual(Disk.bytes(indexPath), staleIndex)
        Disk.write(staleIndex, to: indexPath)  // offset 4 "at 422", now the middle of a batch
        Disk.write(staleTimeIndex, to: timeIndexPath)

        let (reopened, report) = try openLog(dir.partition, config: small)
        XCTAssertEqual(report.recoveryPoint, Offset(10))
        XCTAssertEqual(report.truncations, [], report.description)
        XCTAssertEqual(report.warnings, [], report.description)
        XCTAssertEqual(report.indexesRebuilt.count, 1, report.description)
        XCTAssertTrue(report.indexesRebuilt.first?.reason.contains("rescanned") ?? false, report.description)
        XCTAssertEqual(reopened.logEndOffset, Offset(10))
        XCTAssertEqual(try readAll(reopened).map(\.0), stride(from: 0, to: 10, by: 2).map { Offset(Int64($0)) })
        try reopened.close()
        let (clean, cleanReport) = try openLog(dir.partition, config: small)
        XCTAssertTrue(cleanReport.wasClean, cleanReport.description)
        try clean.close()
    }
}
