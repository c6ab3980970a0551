import Foundation
import LogStorage
import NIOCore
import Records
import XCTest

final class PartitionLogTests: XCTestCase {
    let small = LogConfig(segmentBytesMax: 2_000, indexIntervalBytes: 300)

    /// Appends with varying record counts, rolls across many small segments, and reads
    /// every batch back byte for byte with offsets assigned in order.
    func testAppendedBatchesReadBackInOrderAcrossManySegments() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition, config: small)
        var expected: [(Offset, [UInt8])] = []
        for i in 0..<120 {
            var batch = makeBatch(
                records: Int32(1 + i % 4), timestamp: Int64(i), payloadBytes: 50 + i % 90,
                fill: UInt8(i))
            let result = try log.append(&batch, leaderEpoch: 7, now: Milliseconds(0))
            XCTAssertEqual(result.lastOffset.value - result.firstOffset.value, Int64(i % 4))
            expected.append((result.firstOffset, batch.getBytes(at: 0, length: batch.readableBytes)!))
        }
        XCTAssertGreaterThan(log.segmentInfos.count, 5)
        let got = try readAll(log)
        XCTAssertEqual(got.map(\.0), expected.map(\.0))
        XCTAssertTrue(zip(got, expected).allSatisfy { $0.1 == $1.1 })
        let header = try RecordBatchHeader.read(from: ByteBuffer(bytes: got[5].1), at: 0)
        XCTAssertEqual(header.partitionLeaderEpoch, 7)
        try log.close()
        let (reopened, _) = try openLog(dir.partition, config: small)
        XCTAssertEqual(try readAll(reopened).map(\.1), expected.map(\.1))
        try reopened.close()
    }

    /// A read from every offset starts with the batch holding that offset, found through
    /// the sparse index, both before and after a reopen.
    func testEveryOffsetIsFoundThroughTheIndex() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var (log, _) = try openLog(dir.partition, config: small)
        for i in 0..<80 {
            var batch = makeBatch(records: Int32(1 + i % 3), payloadBytes: 40 + (i * 7) % 60)
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
        XCTAssertTrue(log.segmentInfos.contains { $0.indexEntries > 1 })
        for round in 0..<2 {
            for value in 0..<log.logEndOffset.value {
                let read = try log.read(from: Offset(value), maxBytes: 1)
                let slice = try XCTUnwrap(read.slices.first, "round \(round) offset \(value)")
                XCTAssertLessThanOrEqual(slice.firstOffset.value, value)
                XCTAssertGreaterThanOrEqual(slice.lastOffset.value, value)
                XCTAssertEqual(read.slices.count, 1)
            }
            try log.close()
            (log, _) = try openLog(dir.partition, config: small)
        }
        try log.close()
    }

    /// The first batch comes back whole even when larger than maxBytes (KIP-74); upTo (the
    /// high watermark) hides later batches; offsets outside the log are typed errors.
    func testReadLimitsAndOutOfRangeOffsets() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition)
        for _ in 0..<5 {
            var batch = makeBatch(records: 2, payloadBytes: 500)
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
        let one = try log.read(from: Offset(3), maxBytes: 10)
        XCTAssertEqual(one.slices.count, 1)
        XCTAssertEqual(one.slices[0].firstOffset, Offset(2))
        XCTAssertEqual(one.slices[0].length.value, 561)
        XCTAssertEqual(one.nextOffset, Offset(4))
        let two = try log.read(from: Offset(0), maxBytes: 1_200)
        XCTAssertEqual(two.byteCount.value, 1_122)
        let capped = try log.read(from: Offset(0), maxBytes: 1 << 20, upTo: Offset(6))
        XCTAssertEqual(capped.nextOffset, Offset(6))
        XCTAssertEqual(capped.slices[0].lastOffset, Offset(5))
        XCTAssertEqual(try log.read(from: Offset(10), maxBytes: 100).slices, [])
        XCTAssertThrowsError(try log.read(from: Offset(11), maxBytes: 100)) { error in
            XCTAssertEqual(
                error as? LogError, .offsetOutOfRange(requested: Offset(11), logStart: .zero, logEnd: Offset(10)))
        }
        try log.close()
    }

    /// The time index and a short scan find the first batch whose max timestamp reaches a target.
    func testOffsetForTimestampFindsFirstBatchAtOrAfterTarget() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition, config: small)
        // Timestamps 0, 10, 20, ... with one out-of-order dip every 7 batches.
        var timestamps: [(Offset, Int64)] = []
        for i in 0..<60 {
            let ts = i % 7 == 6 ? Int64(i * 10 - 35) : Int64(i * 10)
            var batch = makeBatch(records: 2, timestamp: ts, payloadBytes: 80)
            let result = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
            timestamps.append((result.firstOffset, ts))
        }
        var current = log
        for _ in 0..<2 {  // before and after a reopen (time index from disk)
            for target in stride(from: Int64(-5), through: 600, by: 3) {
                let expected = timestamps.first { $0.1 >= target }?.0
                XCTAssertEqual(try current.offset(forTimestamp: target), expected, "target \(target)")
            }
            try current.close()
            (current, _) = try openLog(dir.partition, config: small)
        }
        XCTAssertTrue(current.segmentInfos.contains { $0.timeIndexEntries > 0 })
        try current.close()
    }

    /// Truncation at batch boundaries (inside a segment, at a segment's base, in an
    /// older segment) removes exactly the later batches; appends then continue from there.
    func testTruncateAcrossSegmentsThenAppendAgain() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var (log, _) = try openLog(dir.partition, config: small)
        var bases: [Offset] = []
        for i in 0..<60 {
            var batch = makeBatch(records: 2, payloadBytes: 100, fill: UInt8(i))
            bases.append(try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0)).firstOffset)
        }
        let segmentBase = log.segmentInfos[3].baseOffset
        for point in [bases[55], segmentBase, bases[9], bases[1]] {
            try log.truncate(from: point)
            XCTAssertEqual(log.logEndOffset, point)
            XCTAssertEqual(try readAll(log).last.map { $0.0.value + 2 } ?? 0, point.value)
            XCTAssertLessThanOrEqual(log.durableEndOffset, point)
            XCTAssertTrue(log.segmentInfos.allSatisfy { $0.baseOffset <= point })
            var batch = makeBatch(records: 2, payloadBytes: 100, fill: 0xEE)
            XCTAssertEqual(try log.append(&batch, leaderEpoch: 2, now: Milliseconds(0)).firstOffset, point)
            try log.truncate(from: point)
            try log.close()
            (log, _) = try openLog(dir.partition, config: small)
            XCTAssertEqual(log.logEndOffset, point)
            for value in 0..<point.value {
                XCTAssertLessThanOrEqual(
                    try log.read(from: Offset(value), maxBytes: 1).slices[0].firstOffset.value,
                    value)
            }
        }
        for i in 0..<30 {
            var batch = makeBatch(records: 2, payloadBytes: 100, fill: UInt8(i))
            _ = try log.append(&batch, leaderEpoch: 3, now: Milliseconds(0))
        }
        XCTAssertEqual(try readAll(log).count, 31)
        try log.close()
    }

    /// Truncating inside a batch is refused with a typed error and changes nothing.
    func testTruncateInsideABatchIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition)
        var batch = makeBatch(records: 5)
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        XCTAssertThrowsError(try log.truncate(from: Offset(2))) { error in
            XCTAssertEqual(
                error as? LogError,
                .notBatchBoundary(requested: Offset(2), batchFirst: .zero, batchLast: Offset(4)))
        }
        XCTAssertEqual(log.logEndOffset, Offset(5))
        try log.close()
    }

    /// The active segment rolls when the next append would pass segmentBytesMax, and when
    /// segmentMsMax has passed since its first batch.
    func testSegmentsRollBySizeAndByAge() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let config = LogConfig(segmentBytesMax: 1_000, segmentMsMax: 60_000)
        let (log, _) = try openLog(dir.partition, config: config, now: 0)
        for _ in 0..<6 {  // 161 bytes each: 6 fit in 1000
            var batch = makeBatch(timestamp: 0, payloadBytes: 100)
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
        XCTAssertEqual(log.segmentInfos.count, 1)
        var batch = makeBatch(timestamp: 0, payloadBytes: 100)
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        XCTAssertEqual(log.segmentInfos.map(\.baseOffset), [.zero, Offset(6)])
        batch = makeBatch(timestamp: 59_999, payloadBytes: 10)
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(59_999))
        XCTAssertEqual(log.segmentInfos.count, 2)
        batch = makeBatch(timestamp: 60_000, payloadBytes: 10)
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(60_000))
        XCTAssertEqual(log.segmentInfos.map(\.baseOffset), [.zero, Offset(6), Offset(8)])
        try log.roll(now: Milliseconds(60_000))
        XCTAssertEqual(log.segmentInfos.count, 4)
        try log.roll(now: Milliseconds(60_000))  // an empty active segment does not roll
        XCTAssertEqual(log.segmentInfos.count, 4)
        try log.close()
    }

    /// Retention deletes whole old segments by size and by age, never the active one nor
    /// one holding offsets at or above the floor, and the new log start survives a reopen.
    func testRetentionRespectsFloorAndPersistsLogStart() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var config = LogConfig(segmentBytesMax: 1_000, retentionBytesMax: 1_900, retentionMsMax: nil)
        var (log, _) = try openLog(dir.partition, config: config)
        for i in 0..<30 {  // 161-byte batches, 6 per segment: 5 segments
            var batch = makeBatch(timestamp: Int64(i * 1_000), payloadBytes: 100)
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
        XCTAssertEqual(log.segmentInfos.count, 5)
        var result = try log.applyRetention(now: Milliseconds(0), floor: Offset(13))
        XCTAssertEqual(result.segmentsDeleted, 2)  // segments 0 and 6; segment 12 holds offset 13
        XCTAssertEqual(log.logStartOffset, Offset(12))
        XCTAssertThrowsError(try log.read(from: Offset(11), maxBytes: 1))
        result = try log.applyRetention(now: Milliseconds(0), floor: Offset(30))
        XCTAssertEqual(result.segmentsDeleted, 1)  // 3 x 966 bytes: deleting a second would leave < 1900
        XCTAssertEqual(log.logStartOffset, Offset(18))
        try log.close()
        (log, _) = try openLog(dir.partition, config: config)
        XCTAssertEqual(log.logStartOffset, Offset(18))
        XCTAssertEqual(log.logEndOffset, Offset(30))
        try log.close()

        config.retentionBytesMax = nil
        config.retentionMsMax = 10_000
        (log, _) = try openLog(dir.partition, config: config)
        // Segment 18 ends with timestamp 23000, segment 24 (active) with 29000.
        XCTAssertEqual(try log.applyRetention(now: Milliseconds(33_000), floor: Offset(30)).segmentsDeleted, 0)
        XCTAssertEqual(try log.applyRetention(now: Milliseconds(33_001), floor: Offset(23)).segmentsDeleted, 0)
        XCTAssertEqual(try log.applyRetention(now: Milliseconds(99_999), floor: Offset(30)).segmentsDeleted, 1)
        XCTAssertEqual(log.logStartOffset, Offset(24))
        XCTAssertEqual(log.segmentInfos.count, 1)  // the active segment stays, however old
        try log.close()
        (log, _) = try openLog(dir.partition, config: config)
        XCTAssertEqual(log.logStartOffset, Offset(24))
        try log.close()
    }

    /// A batch over batchBytesMax is refused with a typed error, and nothing is written.
    func testBatchTooLargeIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition, config: LogConfig(batchBytesMax: 1_000))
        var batch = makeBatch(payloadBytes: 1_000)
        XCTAssertThrowsError(try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))) { error in
            XCTAssertEqual(error as? LogError, .batchTooLarge(size: 1_061, limit: 1_000))
        }
        XCTAssertEqual(log.logEndOffset, .zero)
        XCTAssertEqual(log.segmentInfos[0].size, .zero)
        try log.close()
    }

    /// A batch whose CRC does not match is refused, and neither it nor the valid batch
    /// before it in the same append is written.
    func testBadCRCIsRefusedOnAppend() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let (log, _) = try openLog(dir.partition)
        var batches = makeBatch()
        var bad = makeBatch()
        bad.setInteger(UInt8(0x00), at: 80)
        batches.writeBuffer(&bad)
        XCTAssertThrowsError(try log.append(&batches, leaderEpoch: 1, now: Milliseconds(0))) { error in
            guard case .invalidBatch(index: 1, reason: .crcMismatch) = error as? LogError else {
                return XCTFail("unexpected \(error)")
            }
        }
        XCTAssertEqual(log.logEndOffset, .zero)
        try log.close()
    }

    /// Several concatenated batches in one append get consecutive offsets and cost one
    /// pwrite; a follower's replicated batches must start exactly at the log end.
    func testMultiBatchAppendUsesOneWriteAndReplicatedAppendMustBeContiguous() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let io = FaultyFileIO()
        let (log, _) = try openLog(dir.partition, io: io)
        var run = ByteBufferAllocator().buffer(capacity: 0)
        for records: Int32 in [3, 1, 4] {
            var batch = makeBatch(records: records)
            run.writeBuffer(&batch)
        }
        let writes = io.writes
        let result = try log.append(&run, leaderEpoch: 1, now: Milliseconds(0))
        XCTAssertEqual(io.writes - writes, 1)
        XCTAssertEqual(result.batchCount, 3)
        XCTAssertEqual(result.lastOffset, Offset(7))
        XCTAssertEqual(try readAll(log).map(\.0), [Offset(0), Offset(3), Offset(4)])

        var replicated = makeBatch(records: 2)
        RecordBatch.setBaseOffset(Offset(9), in: &replicated, at: 0)
        XCTAssertThrowsError(try log.appendReplicated(replicated, now: Milliseconds(0))) { error in
            XCTAssertEqual(error as? LogError, .nonContiguousAppend(expected: Offset(8), found: Offset(9)))
        }
        RecordBatch.setBaseOffset(Offset(8), in: &replicated, at: 0)
        RecordBatch.setPartitionLeaderEpoch(4, in: &replicated, at: 0)
        XCTAssertEqual(try log.appendReplicated(replicated, now: Milliseconds(0)).lastOffset, Offset(9))
        let stored = try readAll(log).last!
        XCTAssertEqual(stored.1, replicated.getBytes(at: 0, length: replicated.readableBytes))
        try log.close()
    }

    /// N appends and one flush cost exactly one fsync, and durableEndOffset moves only then.
    func testGroupCommitCoversManyAppendsWithOneFsync() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let io = FaultyFileIO()
        let (log, _) = try openLog(dir.partition, io: io)
        try log.flush()
        let syncs = io.fileSyncs + io.directorySyncs
        for _ in 0..<50 {
            var batch = makeBatch()
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
        XCTAssertTrue(log.needsFlush)
        XCTAssertEqual(log.durableEndOffset, .zero)
        XCTAssertEqual(log.unflushedBytes.value, 50 * 161)
        XCTAssertEqual(try log.flush(), Offset(50))
        XCTAssertEqual(io.fileSyncs + io.directorySyncs - syncs, 1)
        XCTAssertFalse(log.needsFlush)
        try log.flush()
        XCTAssertEqual(io.fileSyncs + io.directorySyncs - syncs, 1)  // nothing new: no fsync
        try log.close()
    }

    /// A flush split in two (fsync on another thread) covers only the appends made
    /// before it began; appends made meanwhile stay unflushed, and truncation waits.
    func testSplitFlushCoversOnlyAppendsBeforeItBegan() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let io = FaultyFileIO()
        let (log, _) = try openLog(dir.partition, io: io)
        var batch = makeBatch(records: 2)
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        let plan = try XCTUnwrap(log.beginFlush())
        XCTAssertEqual(plan.targetOffset, Offset(2))
        batch = makeBatch(records: 3)
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        XCTAssertThrowsError(try log.truncate(from: .zero)) { XCTAssertEqual($0 as? LogError, .flushInProgress) }
        let worker = Thread { try? plan.execute(io: PosixFileIO()) }
        worker.start()
        while !worker.isFinished { sched_yield() }
        XCTAssertEqual(try log.completeFlush(plan, error: nil), Offset(2))
        XCTAssertTrue(log.needsFlush)
        XCTAssertEqual(log.unflushedBytes.value, 161)
        let syncs = io.fileSyncs
        XCTAssertEqual(try log.flush(), Offset(5))
        XCTAssertEqual(io.fileSyncs - syncs, 1)
        try log.close()
    }

    /// Under FlushPolicy.none an append is "durable" at once (it relies on replication).
    func testFlushPolicyNoneReportsWrittenAsDurable() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let io = FaultyFileIO()
        let (log, _) = try openLog(dir.partition, config: LogConfig(flushPolicy: .none), io: io)
        var batch = makeBatch(records: 3)
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        XCTAssertEqual(log.durableEndOffset, Offset(3))
        XCTAssertFalse(log.needsFlush)
        try log.close()
    }

    /// DurabilityWaiters hands back exactly the tokens whose offsets a flush covered, in
    /// order, and cancels those above a truncation point.
    func testDurabilityWaitersReleaseExactlyTheSatisfiedTokens() {
        var waiters = DurabilityWaiters<String>()
        waiters.register("a", throughOffset: Offset(4))
        waiters.register("b", throughOffset: Offset(9))
        waiters.register("c", throughOffset: Offset(9))
        waiters.register("early", throughOffset: Offset(2))
        waiters.register("d", throughOffset: Offset(20))
        XCTAssertEqual(waiters.release(durableEndOffset: Offset(2)), [])
        XCTAssertEqual(waiters.release(durableEndOffset: Offset(5)), ["early", "a"])
        XCTAssertEqual(waiters.release(durableEndOffset: Offset(9)), [])
        XCTAssertEqual(waiters.release(durableEndOffset: Offset(10)), ["b", "c"])
        waiters.register("e", throughOffset: Offset(30))
        XCTAssertEqual(waiters.cancel(fromOffset: Offset(25)), ["e"])
        XCTAssertEqual(waiters.count, 1)
        XCTAssertEqual(waiters.release(durableEndOffset: Offset(100)), ["d"])
        XCTAssertEqual(waiters.count, 0)
    }

    /// A full disk fails the log: the append is refused with "disk full", later appends
    /// and flushes are refused, and a reopen cuts the torn bytes and accepts appends again.
    func testDiskFullFailsTheLogUntilReopened() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let io = FaultyFileIO()
        var (log, _) = try openLog(dir.partition, io: io)
        for _ in 0..<3 {
            var batch = makeBatch()
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
        try log.flush()
        io.writeBytesLeft = 100
        var batch = makeBatch()
        XCTAssertThrowsError(try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))) { error in
            guard case .failed(.diskFull) = error as? LogError else { return XCTFail("unexpected \(error)") }
        }
        io.writeBytesLeft = nil
        batch = makeBatch()
        XCTAssertThrowsError(try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))) { error in
            guard case .failed(.diskFull) = error as? LogError else { return XCTFail("unexpected \(error)") }
        }
        XCTAssertThrowsError(try log.flush())
        XCTAssertEqual(log.durableEndOffset, Offset(3))
        XCTAssertEqual(log.logEndOffset, Offset(3))
        try log.close()
        let report: RecoveryReport
        (log, report) = try openLog(dir.partition, io: io)
        XCTAssertEqual(report.bytesTruncated.value, 100)
        XCTAssertEqual(log.logEndOffset, Offset(3))
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        try log.close()
    }

    /// An fsync error fails the log: durableEndOffset does not move and appends are refused.
    func testFsyncFailureNeverReportsUnsyncedBytesAsDurable() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let io = FaultyFileIO()
        let (log, _) = try openLog(dir.partition, io: io)
        var batch = makeBatch()
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        try log.flush()
        batch = makeBatch()
        _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        io.syncErrno = EIO
        XCTAssertThrowsError(try log.flush()) { error in
            guard case .failed(.fsyncFailed(_, EIO)) = error as? LogError else { return XCTFail("unexpected \(error)") }
        }
        XCTAssertEqual(log.durableEndOffset, Offset(1))
        io.syncErrno = nil
        XCTAssertThrowsError(try log.flush())
        XCTAssertEqual(log.durableEndOffset, Offset(1))
        batch = makeBatch()
        XCTAssertThrowsError(try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))) { error in
            guard case .failed(.fsyncFailed) = error as? LogError else { return XCTFail("unexpected \(error)") }
        }
        try log.close()
    }

    /// Limits out of range are refused when the log opens.
    func testConfigIsValidatedAtOpen() {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        for config in [
            LogConfig(segmentBytesMax: 10), LogConfig(batchBytesMax: -1), LogConfig(segmentMsMax: 0),
            LogConfig(retentionBytesMax: -5),
        ] {
            XCTAssertThrowsError(try openLog(dir.partition, config: config)) { error in
                guard case .invalidConfig = error as? LogError else { return XCTFail("unexpected \(error)") }
            }
        }
    }
}
