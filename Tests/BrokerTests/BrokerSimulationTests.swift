// Whole brokers in the seeded, deterministic simulation (layer 2 of DESIGN.md's testing layers, with the real
// Broker around the Raft groups), over a fixed budget of seeds.
import Foundation
import Simulation
import XCTest

final class BrokerSimulationTests: XCTestCase {
    /// Seeds of 3-node clusters; 5-node clusters get a quarter of it. `KEEL_BROKER_SIM_SEEDS` changes it.
    private var budget: Int {
        ProcessInfo.processInfo.environment["KEEL_BROKER_SIM_SEEDS"].flatMap { Int($0) } ?? 24
    }

    /// Crashes, graceful stops, splits, loss, duplication and reordering never break Raft's safety in any group
    /// of a 3-node cluster, every acknowledged record ends up once on every replica, and every run ends live.
    func testSimulatedThreeBrokerClustersStaySafeAndLive() {
        runSeeds(nodeCount: 3, count: budget, firstSeed: 1)
    }

    /// The same for 5-node clusters (topics of replication factor 3 spread over them).
    func testSimulatedFiveBrokerClustersStaySafeAndLive() {
        runSeeds(nodeCount: 5, count: max(1, budget / 4), firstSeed: 1_000_001)
    }

    /// Seeds that found bugs, kept as regression tests:
    /// - 2: after a failover the new leader answered ListOffsets with a high watermark below the one its
    ///   predecessor had answered (its own LEADER_CHANGE batch not committed yet); now OFFSET_NOT_AVAILABLE.
    /// - 81, 86: a node away while the scratch topic was deleted and created again applied both records at once
    ///   and kept its replica of the deleted topic for the new one; now reconcile compares the topic uid.
    /// - 312, 385: the stray-directory sweep after a restart removed the directories of replicas opened while
    ///   it listed the data directory; now strays are chosen against the replicas open when it removes them.
    func testSeedsThatFoundBugs() {
        for seed: UInt64 in [2, 81, 86, 312, 385] { runSeeds(nodeCount: 3, count: 1, firstSeed: seed) }
    }

    /// The same seed replays the same run exactly: the same trace, the same frames, the same answers.
    func testSeedReplaysExactly() {
        let options = BrokerSimulationOptions(nodeCount: 3)
        var first: [String] = []
        var second: [String] = []
        let one = BrokerSimulation.run(seed: 5, options: options) { first.append($0) }
        let two = BrokerSimulation.run(seed: 5, options: options) { second.append($0) }
        XCTAssertNil(one.failure)
        XCTAssertGreaterThan(one.crashes + one.stops, 0, "seed 5 restarts nodes")
        XCTAssertGreaterThan(first.count, 100)
        XCTAssertEqual(first, second)
        XCTAssertEqual(one.digest, two.digest)
        // Tracing changes nothing.
        XCTAssertEqual(BrokerSimulation.run(seed: 5, options: options).digest, one.digest)
    }

    private func runSeeds(nodeCount: Int, count: Int, firstSeed: UInt64) {
        let options = BrokerSimulationOptions(nodeCount: nodeCount)
        var acknowledged = 0
        var crashes = 0
        for seed in firstSeed..<firstSeed + UInt64(count) {
            let result = BrokerSimulation.run(seed: seed, options: options)
            acknowledged += result.acknowledgedRecords
            crashes += result.crashes + result.stops
            if let failure = result.failure {
                let tail = BrokerSimulation.traceTail(seed: seed, options: options, count: 60).joined(separator: "\n")
                XCTFail(
                    "seed \(seed) (\(nodeCount) brokers) failed: \(failure)\n"
                        + "replay: keel-sim --brokers --nodes \(nodeCount) --seed \(seed) --trace\n\(tail)")
                return
            }
            XCTAssertGreaterThan(result.acknowledgedRecords, 0, "seed \(seed) acknowledged nothing")
        }
        print(
            "broker simulation: \(count) seeds of \(nodeCount) brokers, \(crashes) crashes and stops, "
                + "\(acknowledged) records acknowledged, no failure")
    }
}
