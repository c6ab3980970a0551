// The randomized simulation over a fixed budget of seeds (layer 2 of DESIGN.md's testing layers).
import Foundation
import Simulation
import XCTest

final class SimulationTests: XCTestCase {
    /// Seeds per group size: 3-node groups get the budget, 5-node groups half of it. `KEEL_SIM_SEEDS` changes it.
    private var budget: Int {
        ProcessInfo.processInfo.environment["KEEL_SIM_SEEDS"].flatMap { Int($0) } ?? 1000
    }

    /// Random faults never break Raft's safety invariants in 3-node groups, and every run ends live.
    func testSimulatedThreeNodeGroupsStaySafeAndLive() {
        runSeeds(nodeCount: 3, count: budget, firstSeed: 1)
    }

    /// Random faults never break Raft's safety invariants in 5-node groups, and every run ends live.
    func testSimulatedFiveNodeGroupsStaySafeAndLive() {
        runSeeds(nodeCount: 5, count: max(1, budget / 2), firstSeed: 1_000_001)
    }

    /// The same seed replays the same run exactly (no hidden source of nondeterminism).
    func testSeedReplaysExactly() {
        let options = SimulationOptions(nodeCount: 5)
        var first: [String] = []
        var second: [String] = []
        _ = Simulation.run(seed: 42, options: options) { first.append($0) }
        _ = Simulation.run(seed: 42, options: options) { second.append($0) }
        XCTAssertGreaterThan(first.count, 1000)
        XCTAssertEqual(first, second)
    }

    private func runSeeds(nodeCount: Int, count: Int, firstSeed: UInt64) {
        let options = SimulationOptions(nodeCount: nodeCount)
        var elections = 0
        var commits = 0
        for seed in firstSeed..<firstSeed + UInt64(count) {
            let result = Simulation.run(seed: seed, options: options)
            elections += result.elections
            commits += result.commits
            if let failure = result.failure {
                let tail = Simulation.traceTail(seed: seed, options: options, count: 40).joined(separator: "\n")
                XCTFail(
                    "seed \(seed) (\(nodeCount) nodes) failed: \(failure)\n"
                        + "replay: keel-sim --seed \(seed) --nodes \(nodeCount) --trace\n\(tail)")
                return
            }
        }
        print(
            "simulation: \(count) seeds of \(nodeCount) nodes, \(elections) elections, \(commits) commits, no failure")
    }
}
