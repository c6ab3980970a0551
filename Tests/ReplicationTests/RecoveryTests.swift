// Crashes at every step of the replica's own file changes, and a lost or damaged epoch cache.
import LogStorage
import NIOCore
import Raft
import Records
import Replication
import Simulation
import XCTest

final class ReplicaRecoveryTests: XCTestCase {
    func produce(_ cluster: TestCluster, _ tags: [String]) throws {
        for tag in tags {
            let leader = try XCTUnwrap(cluster.waitForLeader(), "seed \(cluster.seed)")
            let proposal = try XCTUnwrap(cluster.engines[leader]).propose(try makeBatch(tag), now: cluster.millis)
            XCTAssertTrue(
                cluster.run(until: {
                    (cluster.engines[leader]?.commitIndex.value ?? -1) >= proposal.offsets.upperBound.value
                }))
        }
    }

    /// A follower reset to its leader's log start can die at any step of the reset (truncation, epoch cache,
    /// checkpoint, segment swap); after the restart it holds either its old log or the reset one, and converges.
    func testCrashAtEveryStepOfALogResetConverges() throws {
        var crashed = 0
        for step in 0..<60 {
            let cluster = TestCluster(
                seed: 100 + UInt64(step), logConfig: LogConfig(segmentBytesMax: 400, retentionBytesMax: 0))
            try produce(cluster, ["a"])
            XCTAssertTrue(cluster.run(until: { cluster.converged }))
            let leader = try XCTUnwrap(cluster.leader)
            let away = (leader + 1) % 3
            cluster.isolate(away)
            try produce(cluster, (0..<12).map { "m\($0)" })
            for k in 0..<3 where k != away { _ = try cluster.engines[k]!.applyRetention(now: cluster.millis) }
            cluster.disks[away].operationsLeft = step
            cluster.heal()
            cluster.run(until: { cluster.engines[away]!.failure != nil || cluster.converged })
            if cluster.engines[away]!.failure != nil {
                crashed += 1
                cluster.crash(away)
                cluster.disks[away].operationsLeft = nil
                cluster.start(away)
            }
            cluster.disks[away].operationsLeft = nil
            XCTAssertTrue(cluster.run(until: { cluster.converged }), "step \(step): never converged")
            let start = try XCTUnwrap(cluster.engines[leader]).log.logStartOffset
            XCTAssertEqual(cluster.engines[away]!.log.logStartOffset, start, "step \(step)")
            XCTAssertEqual(
                try cluster.logBytes(away, from: start), try cluster.logBytes(leader, from: start), "step \(step)")
        }
        XCTAssertGreaterThan(crashed, 20, "the crash points must cover the reset")
    }

    /// A missing or damaged leader-epoch cache is rebuilt from the batch headers on open, with the same terms.
    func testEpochCacheIsRebuiltWhenMissingOrDamaged() throws {
        let cluster = TestCluster(seed: 9)
        try produce(cluster, ["a", "b"])
        let leader = try XCTUnwrap(cluster.leader)
        cluster.crash(leader)
        XCTAssertNotNil(cluster.waitForLeader())
        try produce(cluster, ["c"])
        cluster.start(leader)
        XCTAssertTrue(cluster.run(until: { cluster.converged }))
        let k = (leader + 1) % 3
        let expected = try XCTUnwrap(cluster.engines[k]).reader.cache
        XCTAssertGreaterThanOrEqual(expected.epochs.count, 2)
        let path = TestCluster.directory + "/" + LeaderEpochCache.fileName
        for damage in ["missing", "damaged"] {
            cluster.run(ticks: 5)
            cluster.crash(k)
            if damage == "missing" {
                try cluster.disks[k].remove(path)
            } else {
                cluster.disks[k].entries[path]?.data[8] ^= 0xFF
            }
            cluster.start(k)
            let engine = try XCTUnwrap(cluster.engines[k])
            XCTAssertEqual(engine.epochCacheReport.rebuiltBecause.map { $0.contains(damage) }, true, damage)
            XCTAssertEqual(engine.reader.cache, expected, damage)
        }
        try produce(cluster, ["d"])
        XCTAssertTrue(cluster.run(until: { cluster.converged }))
    }

    /// The cache file round-trips, and a restart of a clean replica keeps it as it was.
    func testEpochCacheSurvivesACleanRestart() throws {
        let cluster = TestCluster(seed: 10)
        try produce(cluster, ["a"])
        XCTAssertTrue(cluster.run(until: { cluster.converged }))
        let expected = cluster.engines[0]!.reader.cache
        cluster.crash(0)
        cluster.start(0)
        XCTAssertNil(cluster.engines[0]!.epochCacheReport.rebuiltBecause)
        XCTAssertEqual(cluster.engines[0]!.reader.cache, expected)
    }
}

final class HardStateStoreTests: XCTestCase {
    /// The hard state round-trips through its file; a damaged file is refused rather than guessed at (a node
    /// that guessed its vote could vote twice in a term), and a missing one is the initial state.
    func testRoundTripAndDamage() throws {
        let disk = SimulatedDisk()
        try disk.makeDirectory("/p")
        let store = HardStateStore(io: disk, directory: "/p")
        XCTAssertEqual(try store.load(), .initial)
        for state in [HardState(term: Term(7), votedFor: NodeID(3)), HardState(term: Term(8), votedFor: nil)] {
            try store.save(state)
            XCTAssertEqual(try store.load(), state)
            disk.crash()
            XCTAssertEqual(try store.load(), state, "durable once save returns")
        }
        disk.entries["/p/" + HardStateStore.fileName]?.data[10] ^= 0x01
        XCTAssertThrowsError(try store.load()) {
            guard case .damaged? = $0 as? HardStateError else { return XCTFail("\($0)") }
        }
    }
}
