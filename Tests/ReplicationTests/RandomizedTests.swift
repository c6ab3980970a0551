// Seeded randomized runs of three replicas with crashes (losing unsynced data), message loss, partitions and
// retention; after healing, every acknowledged produce must be on every replica exactly once at its offset.
import Foundation
import LogStorage
import NIOCore
import Raft
import Records
import Replication
import XCTest

final class RandomizedTests: XCTestCase {
    /// Seeds per run; `KEEL_REPLICATION_SEEDS` changes it.
    var budget: Int { ProcessInfo.processInfo.environment["KEEL_REPLICATION_SEEDS"].flatMap { Int($0) } ?? 200 }

    /// Every acknowledged (committed) produce is present exactly once, at its offset, on every replica after
    /// the faults heal, and the replicas end byte-identical.
    func testAcknowledgedProducesSurviveCrashesAndLoss() throws {
        for seed in 1...UInt64(budget) {
            let failures = Self.run(seed: seed)
            if !failures.isEmpty {
                XCTFail(
                    "seed \(seed) failed (KEEL_REPLICATION_SEEDS / run(seed:) replays it):\n"
                        + failures.prefix(5).joined(separator: "\n"))
            }
        }
    }

    /// The same seed replays the same run.
    func testSeedReplaysExactly() {
        XCTAssertEqual(fingerprint(seed: 7), fingerprint(seed: 7))
    }

    func fingerprint(seed: UInt64) -> [String] {
        var trace: [String] = []
        _ = Self.run(seed: seed) { trace.append($0) }
        return trace
    }

    /// One run; returns what went wrong.
    static func run(seed: UInt64, trace: ((String) -> Void)? = nil) -> [String] {
        let cluster = TestCluster(seed: seed, logConfig: LogConfig(segmentBytesMax: 700, retentionBytesMax: 0))
        var random = SeededRandom(seed: seed ^ 0x5EED)
        func chance(_ percent: Int) -> Bool { Int(random.next() % 100) < percent }
        func pick(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        cluster.lossPercent = pick(15)
        cluster.delayTicksMax = 1 + pick(3)
        cluster.flushDelayTicksMax = pick(4)
        if chance(50) { cluster.slowFlushes[pick(cluster.size)] = 10 + pick(50) }
        var restartAt: [Int: Int] = [:]
        var produced: [Int: (proposal: Proposal, tag: String, records: Int)] = [:]
        var nextID = 0
        var problems: [String] = []

        func produce() {
            let k = cluster.leader ?? pick(cluster.size)
            guard let engine = cluster.engines[k] else { return }
            nextID += 1
            let tag = "p\(nextID)"
            let records = 1 + pick(3)
            do {
                let proposal = try engine.propose(try makeBatch(tag, records: records), now: cluster.millis)
                produced[nextID] = (proposal, tag, records)
                engine.awaitCommit(proposal, token: nextID)
                trace?("t=\(cluster.now) n\(k + 1) accepts \(tag) at \(proposal.offsets)")
            } catch {
                trace?("t=\(cluster.now) n\(k + 1) refuses \(tag): \(error)")
            }
        }

        for _ in 0..<300 {
            if chance(3) {
                let up = (0..<cluster.size).filter { cluster.engines[$0] != nil }
                if let k = up.isEmpty ? nil : up[pick(up.count)] {
                    cluster.crash(k)
                    restartAt[k] = cluster.now + 1 + pick(30)
                    trace?("t=\(cluster.now) n\(k + 1) crashes")
                }
            }
            for (k, at) in restartAt where at <= cluster.now {
                cluster.start(k)
                restartAt[k] = nil
                trace?("t=\(cluster.now) n\(k + 1) restarts")
            }
            if chance(4) {
                if chance(50) {
                    cluster.heal()
                    trace?("t=\(cluster.now) network heals")
                } else {
                    let k = pick(cluster.size)
                    cluster.isolate(k)
                    trace?("t=\(cluster.now) n\(k + 1) isolated")
                }
            }
            if chance(25) { produce() }
            if chance(2) {
                let k = pick(cluster.size)
                if let engine = cluster.engines[k] {
                    do {
                        _ = try engine.applyRetention(now: cluster.millis)
                    } catch {
                        problems.append("n\(k + 1) retention: \(error)")
                    }
                }
            }
            cluster.advance()
        }
        // Heal everything and require progress.
        for k in 0..<cluster.size where cluster.engines[k] == nil { cluster.start(k) }
        cluster.heal()
        cluster.slowFlushes = [:]
        trace?("t=\(cluster.now) healing")
        var live = false
        for _ in 0..<40 {
            produce()
            let id = nextID
            if cluster.run(until: { cluster.outcomes[id] != nil }, ticks: 100),
                (try? cluster.outcomes[id]?.get()) != nil
            {
                live = true
                break
            }
        }
        guard live else { return problems + ["no produce committed after healing"] }
        guard cluster.run(until: { cluster.converged }, ticks: 2000) else {
            return problems + [
                "replicas never converged: "
                    + (0..<cluster.size).map { k in
                        let e = cluster.engines[k]!
                        return "n\(k + 1) \(e.role) commit \(e.commitIndex) end \(e.log.logEndOffset)"
                    }.joined(separator: "; ")
            ]
        }
        for (k, engine) in cluster.engines.enumerated() where engine?.failure != nil {
            problems.append("n\(k + 1) failed: \(engine!.failure!)")
        }
        let start = cluster.engines.compactMap { $0?.log.logStartOffset }.max() ?? .zero
        do {
            let reference = try cluster.logBytes(0, from: start)
            for k in 1..<cluster.size where try cluster.logBytes(k, from: start) != reference {
                problems.append("n\(k + 1)'s log differs from n1's from offset \(start)")
            }
            for k in 0..<cluster.size {
                let batches = try cluster.batches(k)
                var seen: [String: [Int64]] = [:]
                for batch in batches where !batch.control {
                    let tag = String(batch.values.first?.split(separator: "/").first ?? "")
                    seen[tag, default: []].append(batch.offset)
                }
                let logStart = cluster.engines[k]!.log.logStartOffset
                for (id, outcome) in cluster.outcomes.sorted(by: { $0.key < $1.key }) {
                    guard case .success(let proposal) = outcome, let entry = produced[id] else { continue }
                    guard proposal == entry.proposal else {
                        problems.append("\(entry.tag): acknowledged \(proposal), proposed \(entry.proposal)")
                        continue
                    }
                    let offsets = seen[entry.tag] ?? []
                    if proposal.offsets.lowerBound >= logStart {
                        if offsets != [proposal.offsets.lowerBound.value] {
                            problems.append(
                                "n\(k + 1): acknowledged \(entry.tag) at \(proposal.offsets) found at \(offsets)")
                        } else if let batch = batches.first(where: { $0.offset == proposal.offsets.lowerBound.value }),
                            batch.values != (0..<entry.records).map({ "\(entry.tag)/\($0)" })
                        {
                            problems.append("n\(k + 1): \(entry.tag) holds \(batch.values)")
                        }
                    } else if !offsets.isEmpty {
                        problems.append("n\(k + 1): \(entry.tag) below the log start \(logStart) still at \(offsets)")
                    }
                }
            }
        } catch {
            problems.append("reading logs: \(error)")
        }
        let held = cluster.engines.reduce(0) { $0 + ($1?.heldWriteCount ?? 0) }
        trace?("writes held behind a flush: \(held)")
        let acknowledged = cluster.outcomes.values.filter { (try? $0.get()) != nil }.count
        let starts = cluster.engines.map { $0.map { "\($0.log.logStartOffset)" } ?? "-" }
        trace?("end: \(acknowledged) acknowledged, log starts \(starts), term \(cluster.engines[0]?.term ?? .zero)")
        return problems
    }
}
