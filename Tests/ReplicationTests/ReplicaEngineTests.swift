// Scenarios of three ReplicaEngines over real PartitionLogs on simulated disks.
import LogStorage
import NIOCore
import Raft
import Records
import Replication
import XCTest

final class ReplicaEngineTests: XCTestCase {
    /// Produces `count` batches on the leader and waits for them all to commit; returns the proposals.
    @discardableResult
    func produce(_ cluster: TestCluster, _ tags: [String], token: inout Int) throws -> [Proposal] {
        var proposals: [Proposal] = []
        for tag in tags {
            let leader = try XCTUnwrap(cluster.waitForLeader(), "seed \(cluster.seed): no leader")
            let engine = try XCTUnwrap(cluster.engines[leader])
            let proposal = try engine.propose(try makeBatch(tag), now: cluster.millis)
            token += 1
            engine.awaitCommit(proposal, token: token)
            proposals.append(proposal)
            let awaited = token
            XCTAssertTrue(cluster.run(until: { cluster.outcomes[awaited] != nil }), "\(tag) never resolved")
            XCTAssertEqual(try cluster.outcomes[awaited]?.get(), proposal)
        }
        return proposals
    }

    func assertIdentical(_ cluster: TestCluster, file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertTrue(cluster.run(until: { cluster.converged }), "replicas never converged", file: file, line: line)
        let start = cluster.engines.compactMap { $0?.log.logStartOffset }.max() ?? .zero
        let reference = try cluster.logBytes(0, from: start)
        for k in 1..<cluster.size {
            XCTAssertEqual(try cluster.logBytes(k, from: start), reference, "n\(k + 1) differs", file: file, line: line)
        }
    }

    /// A fresh group elects a leader, a produce commits on all three replicas at offset 0, and their logs are
    /// byte-identical (no LEADER_CHANGE batch on a fresh partition).
    func testElectionThenProduceCommitsEverywhere() throws {
        let cluster = TestCluster(seed: 1)
        var token = 0
        let proposals = try produce(cluster, ["a", "b", "c"], token: &token)
        XCTAssertEqual(proposals.map(\.offsets), [Offset(0)...Offset(1), Offset(2)...Offset(3), Offset(4)...Offset(5)])
        try assertIdentical(cluster)
        for k in 0..<3 {
            XCTAssertEqual(cluster.engines[k]?.highWatermark, Offset(6))
            let batches = try cluster.batches(k)
            XCTAssertEqual(batches.map(\.offset), [0, 2, 4])
            XCTAssertFalse(batches.contains { $0.control })
            XCTAssertEqual(batches.flatMap(\.values), ["a/0", "a/1", "b/0", "b/1", "c/0", "c/1"])
        }
        // Consumers read below the high watermark only.
        let leader = try XCTUnwrap(cluster.leader)
        let read = try XCTUnwrap(cluster.engines[leader]).read(from: .zero, maxBytes: 1 << 20)
        XCTAssertEqual(read.nextOffset, Offset(6))
    }

    /// A quiet failover (everything committed and known committed) leaves no LEADER_CHANGE batch and no gap;
    /// the old leader rejoins and converges.
    func testQuietFailoverLeavesNoLeaderChangeBatch() throws {
        let cluster = TestCluster(seed: 2)
        var token = 0
        try produce(cluster, ["a", "b"], token: &token)
        XCTAssertTrue(cluster.run(until: { cluster.converged }))
        let old = try XCTUnwrap(cluster.leader)
        cluster.crash(old)
        let new = try XCTUnwrap(cluster.waitForLeader())
        XCTAssertNotEqual(new, old)
        let proposals = try produce(cluster, ["c"], token: &token)
        XCTAssertEqual(proposals[0].offsets, Offset(4)...Offset(5))
        cluster.start(old)
        try assertIdentical(cluster)
        XCTAssertFalse(try cluster.batches(old).contains { $0.control })
    }

    /// A new leader whose log holds entries beyond its commit index appends one LEADER_CHANGE control batch,
    /// which commits them; followers store the leader's exact bytes.
    func testLeaderChangeBatchOnlyOverAnUncommittedTail() throws {
        let cluster = TestCluster(seed: 3)
        var token = 0
        try produce(cluster, ["a"], token: &token)
        XCTAssertTrue(cluster.run(until: { cluster.converged }))
        let old = try XCTUnwrap(cluster.leader)
        // Followers receive the next batch but their answers never reach the leader: nobody learns it committed.
        for k in 0..<3 where k != old { cluster.blocked[k][old] = true }
        let engine = try XCTUnwrap(cluster.engines[old])
        let tail = try engine.propose(try makeBatch("tail"), now: cluster.millis)
        let others = (0..<3).filter { $0 != old }
        XCTAssertTrue(
            cluster.run(until: {
                others.allSatisfy { cluster.engines[$0]!.log.logEndOffset > tail.offsets.upperBound }
            }))
        cluster.crash(old)
        cluster.heal()
        let new = try XCTUnwrap(cluster.waitForLeader())
        XCTAssertTrue(cluster.run(until: { cluster.engines[new]!.commitIndex.value == 4 }))
        let batches = try cluster.batches(new)
        XCTAssertEqual(batches.map(\.offset), [0, 2, 4])
        XCTAssertEqual(batches.map(\.control), [false, false, true])
        XCTAssertEqual(batches[2].epoch, Int32(clamping: cluster.engines[new]!.term.value))
        cluster.start(old)
        try assertIdentical(cluster)
        XCTAssertEqual(try cluster.batches(old).map(\.values), batches.map(\.values))
    }

    /// An isolated leader keeps appending (acks=1) and fsyncs a tail that the others never see; they elect a new
    /// leader and go on. When it comes back, its tail is cut at a batch boundary, its waiters fail with
    /// notLeader, and every replica ends byte-identical, committed data intact.
    func testDeposedLeaderTailIsTruncatedAndConverges() throws {
        let cluster = TestCluster(seed: 4)
        var token = 0
        try produce(cluster, ["a", "b"], token: &token)
        XCTAssertTrue(cluster.run(until: { cluster.converged }))
        let old = try XCTUnwrap(cluster.leader)
        cluster.isolate(old)
        let engine = try XCTUnwrap(cluster.engines[old])
        var doomed: [Int] = []
        for tag in ["x", "y", "z"] {
            let proposal = try engine.propose(try makeBatch(tag, records: 3), now: cluster.millis)
            token += 1
            engine.awaitCommit(proposal, token: token)
            doomed.append(token)
        }
        cluster.run(ticks: 3)
        XCTAssertEqual(engine.log.durableEndOffset, Offset(13), "the tail was fsynced")
        let new = try XCTUnwrap(
            cluster.run(until: { cluster.leader.map { $0 != old } ?? false }) ? cluster.leader : nil)
        try produce(cluster, ["c", "d"], token: &token)
        cluster.heal()
        try assertIdentical(cluster)
        for awaited in doomed {
            guard case .failure(.notLeader)? = cluster.outcomes[awaited] else {
                return XCTFail("token \(awaited): \(String(describing: cluster.outcomes[awaited]))")
            }
        }
        XCTAssertFalse(try cluster.batches(old).flatMap(\.values).contains { $0.hasPrefix("x/") })
        XCTAssertEqual(
            try cluster.batches(new).filter { !$0.control }.flatMap(\.values),
            ["a/0", "a/1", "b/0", "b/1", "c/0", "c/1", "d/0", "d/1"])
    }

    /// A leader crashes and loses its unsynced tail; no committed batch is lost, a new leader takes over, and the
    /// old leader converges when it restarts.
    func testLeaderCrashLosesOnlyUnsyncedUncommittedData() throws {
        let cluster = TestCluster(seed: 5)
        cluster.flushDelayTicksMax = 3
        var token = 0
        let committed = try produce(cluster, ["a", "b", "c"], token: &token)
        let old = try XCTUnwrap(cluster.leader)
        cluster.isolate(old)
        _ = try cluster.engines[old]!.propose(try makeBatch("lost"), now: cluster.millis)
        cluster.crash(old)
        cluster.heal()
        XCTAssertNotNil(cluster.waitForLeader())
        try produce(cluster, ["d"], token: &token)
        cluster.start(old)
        try assertIdentical(cluster)
        for k in 0..<3 {
            let values = try cluster.batches(k).filter { !$0.control }.flatMap(\.values)
            XCTAssertEqual(values, ["a/0", "a/1", "b/0", "b/1", "c/0", "c/1", "d/0", "d/1"], "n\(k + 1)")
        }
        XCTAssertEqual(committed.last?.offsets.upperBound, Offset(5))
    }

    /// A follower that was away while the leader's retention deleted what it lacks is reset to the leader's log
    /// start and catches up.
    func testFollowerBehindLogStartIsResetAndCatchesUp() throws {
        let cluster = TestCluster(seed: 6, logConfig: LogConfig(segmentBytesMax: 400, retentionBytesMax: 0))
        var token = 0
        try produce(cluster, ["a"], token: &token)
        XCTAssertTrue(cluster.run(until: { cluster.converged }))
        let leader = try XCTUnwrap(cluster.leader)
        let away = (leader + 1) % 3
        cluster.isolate(away)
        try produce(cluster, (0..<20).map { "m\($0)" }, token: &token)
        for k in 0..<3 where k != away { _ = try cluster.engines[k]!.applyRetention(now: cluster.millis) }
        let start = cluster.engines[leader]!.log.logStartOffset
        XCTAssertGreaterThan(start, cluster.engines[away]!.log.logEndOffset, "retention must pass the follower")
        cluster.heal()
        try assertIdentical(cluster)
        XCTAssertEqual(cluster.engines[away]!.log.logStartOffset, start)
        // The reset survives a restart: the epoch cache still knows the term before the log start.
        cluster.crash(away)
        cluster.start(away)
        XCTAssertNil(cluster.engines[away]!.epochCacheReport.rebuiltBecause)
        try produce(cluster, ["after"], token: &token)
        try assertIdentical(cluster)
    }

    /// A deposed leader whose fsync is still running when the new leader's truncating append arrives holds
    /// that write (LogStorage cannot truncate under a running flush) and queues what follows; when the flush
    /// completes it truncates, catches up and converges, and its unacknowledged proposals fail.
    func testTruncationWaitsForTheRunningFlush() throws {
        let cluster = TestCluster(seed: 11)
        var token = 0
        try produce(cluster, ["a"], token: &token)
        XCTAssertTrue(cluster.run(until: { cluster.converged }))
        let old = try XCTUnwrap(cluster.leader)
        cluster.isolate(old)
        cluster.slowFlushes[old] = 60
        let engine = try XCTUnwrap(cluster.engines[old])
        let doomed = try engine.propose(try makeBatch("doomed", records: 3), now: cluster.millis)
        token += 1
        engine.awaitCommit(doomed, token: token)
        let doomedToken = token
        cluster.run(ticks: 1)
        XCTAssertTrue(engine.waitingForFlush)
        XCTAssertTrue(cluster.run(until: { cluster.leader.map { $0 != old } ?? false }))
        try produce(cluster, ["b", "c"], token: &token)
        cluster.heal()
        XCTAssertTrue(cluster.run(until: { engine.heldWriteCount > 0 }), "the truncation never waited")
        cluster.slowFlushes[old] = nil
        try assertIdentical(cluster)
        guard case .failure(.notLeader)? = cluster.outcomes[doomedToken] else {
            return XCTFail("the doomed proposal: \(String(describing: cluster.outcomes[doomedToken]))")
        }
        XCTAssertEqual(
            try cluster.batches(old).filter { !$0.control }.flatMap(\.values),
            ["a/0", "a/1", "b/0", "b/1", "c/0", "c/1"])
    }

    /// Under flush policy `.none` (Kafka's default: rely on replication) a write counts as persisted at once,
    /// so produces commit without any fsync of segments.
    func testFlushPolicyNoneCommitsWithoutFsync() throws {
        let cluster = TestCluster(seed: 12, logConfig: LogConfig(segmentBytesMax: 4096, flushPolicy: .none))
        var token = 0
        try produce(cluster, ["a", "b"], token: &token)
        try assertIdentical(cluster)
        XCTAssertTrue(cluster.flushes.isEmpty)
    }

    /// The leader checks produced batches as Kafka does before Raft sees them: a corrupt batch, a control batch
    /// and an empty produce are refused, and nothing is appended.
    func testLeaderRefusesInvalidBatches() throws {
        let cluster = TestCluster(seed: 13)
        let leader = try XCTUnwrap(cluster.waitForLeader())
        let engine = try XCTUnwrap(cluster.engines[leader])
        var corrupt = try makeBatch("x")
        corrupt.setInteger(UInt8(0x55), at: corrupt.writerIndex - 1)
        let control = RecordBatchBuilder.controlBatch(
            ControlRecord(type: .commit), value: ControlRecord.endTransactionMarkerValue(coordinatorEpoch: 0),
            timestamp: 0)
        for bad in [corrupt, control, ByteBuffer()] {
            XCTAssertThrowsError(try engine.propose(bad, now: cluster.millis)) {
                guard case .invalidBatches? = $0 as? ReplicaError else { return XCTFail("\($0)") }
            }
        }
        XCTAssertEqual(engine.log.logEndOffset, .zero)
    }

    /// A non-leader refuses a produce with notLeader and names the leader it knows.
    func testFollowerRefusesProduce() throws {
        let cluster = TestCluster(seed: 7)
        let leader = try XCTUnwrap(cluster.waitForLeader())
        cluster.run(ticks: 5)
        let follower = (leader + 1) % 3
        XCTAssertThrowsError(try cluster.engines[follower]!.propose(try makeBatch("x"), now: cluster.millis)) {
            XCTAssertEqual($0 as? ReplicaError, .notLeader(leader: NodeID(UInt64(leader + 1))))
        }
    }

    /// The hard state survives a crash: a restarted node keeps its term and vote.
    func testHardStateSurvivesCrash() throws {
        let cluster = TestCluster(seed: 8)
        let leader = try XCTUnwrap(cluster.waitForLeader())
        let term = cluster.engines[leader]!.term
        cluster.crash(leader)
        cluster.start(leader)
        XCTAssertEqual(cluster.engines[leader]!.term, term)
        let store = HardStateStore(io: cluster.disks[leader], directory: TestCluster.directory)
        XCTAssertEqual(try store.load(), HardState(term: term, votedFor: NodeID(UInt64(leader + 1))))
    }
}
