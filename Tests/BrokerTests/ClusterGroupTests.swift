// Consumer groups on a 3-node cluster, with real clients (confluent-kafka, kafka-python, aiokafka) as members
// and an idempotent acks=all producer: partitions shared out and moved as members join, leave and die; the
// coordinator's node killed; a static member restarted; offsets reset to a time and replayed. Each member
// (interop/group_member.py) records what it processed and what it committed, and the tests check that every
// acknowledged record was processed and that a partition's new owner starts where the group had committed.
import Foundation
import KafkaProtocol
import XCTest

/// One group member: a python process running interop/group_member.py with a client of choice.
final class GroupMember {
    let name: String
    let eventsPath: String
    let child: ChildProcess

    init(
        _ client: String, name: String, cluster: LocalCluster, topic: String, group: String,
        instance: String? = nil
    ) throws {
        self.name = name
        eventsPath = cluster.root + "/\(name).events"
        try? FileManager.default.removeItem(atPath: eventsPath + ".stop")
        let script = interopDirectory.appendingPathComponent("group_member.py").path
        child = try ChildProcess(
            "python3", [script, client, cluster.bootstrap, topic, group, eventsPath] + (instance.map { [$0] } ?? []),
            outputPath: cluster.root + "/\(name).out")
    }

    /// Every event so far, in the order written.
    var events: [[String: Any]] {
        let text = (try? String(contentsOfFile: eventsPath, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
    }

    /// The partitions assigned now: those of the last assignment, unless revoked since.
    var assignment: Set<Int> {
        var current: Set<Int> = []
        for event in events {
            switch event["e"] as? String {
            case "assigned": current = Set(event["p"] as? [Int] ?? [])
            case "revoked": current.subtract(event["p"] as? [Int] ?? [])
            default: break
            }
        }
        return current
    }

    func count(_ kind: String) -> Int { events.filter { $0["e"] as? String == kind }.count }

    /// (partition, offset, value) of every processed record, in processing order.
    var records: [(partition: Int, offset: Int, value: String, time: Double)] {
        events.compactMap { event in
            guard event["e"] as? String == "rec", let p = event["p"] as? Int, let o = event["o"] as? Int,
                let v = event["v"] as? String, let t = event["t"] as? Double
            else { return nil }
            return (p, o, v, t)
        }
    }

    /// The successful commits: time and the next offset per partition.
    var commits: [(time: Double, offsets: [Int: Int])] {
        events.compactMap { event in
            guard event["e"] as? String == "commit", let t = event["t"] as? Double,
                let offsets = event["p"] as? [String: Int]
            else { return nil }
            return (
                t, Dictionary(uniqueKeysWithValues: offsets.compactMap { key, value in Int(key).map { ($0, value) } })
            )
        }
    }

    /// The highest offset this member committed per partition.
    var lastCommitted: [Int: Int] {
        commits.reduce(into: [:]) { result, commit in
            for (p, o) in commit.offsets { result[p] = max(result[p] ?? 0, o) }
        }
    }

    /// Asks the member to close its consumer (leaving the group) and waits for it to exit.
    func stop() throws {
        _ = FileManager.default.createFile(atPath: eventsPath + ".stop", contents: nil)
        let result = try child.wait(seconds: 60)
        XCTAssertEqual(result.status, 0, "\(name) failed:\n\(result.output)")
    }

    func kill() {
        guard child.process.isRunning else { return }
        Foundation.kill(child.process.processIdentifier, SIGKILL)
        child.process.waitUntilExit()
    }

    var output: String { child.output }
}

final class ClusterGroupTests: XCTestCase {
    /// Starts interop/group_producer.py; values first..<first+count, value i to partition i % partitions.
    func producer(
        _ cluster: LocalCluster, topic: String, partitions: Int, first: Int = 0, count: Int, ackPath: String,
        extra: [String] = []
    ) throws -> ChildProcess {
        try ChildProcess(
            "python3",
            [
                interopDirectory.appendingPathComponent("group_producer.py").path, cluster.bootstrap, topic,
                String(partitions), String(first), String(count), ackPath,
            ] + extra, outputPath: ackPath + ".out")
    }

    /// The acknowledged records: value → (partition, offset).
    func acknowledged(_ path: String) -> [String: (partition: Int, offset: Int)] {
        var acked: [String: (partition: Int, offset: Int)] = [:]
        for line in ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count == 3, let p = Int(fields[1]), let o = Int(fields[2]) else { continue }
            acked[String(fields[0])] = (p, o)
        }
        return acked
    }

    func finish(_ producer: ChildProcess, _ cluster: LocalCluster) throws {
        let result = try producer.wait(seconds: 240)
        XCTAssertEqual(result.status, 0, "producer failed:\n\(result.output)\n\(cluster.logs())")
    }

    /// Waits until the members' current assignments are disjoint, cover `partitions`, and have these sizes.
    func waitForAssignments(
        _ members: [GroupMember], cover partitions: Int, sizes: [Int], seconds: Double = 30
    ) throws {
        try waitUntil("assignments of sizes \(sizes) over \(members.map(\.name))", seconds: seconds) {
            let assignments = members.map(\.assignment)
            let all = assignments.reduce(into: [Int]()) { $0 += $1 }
            return all.sorted() == Array(0..<partitions) && assignments.map(\.count).sorted() == sizes.sorted()
        }
    }

    /// Waits until every acknowledged record was processed by some member, then checks that each was processed
    /// at the offset it was acknowledged at (nothing skipped, no offset holding two values).
    func checkEverythingProcessed(_ members: [GroupMember], ackPath: String, seconds: Double = 60) throws {
        let acked = acknowledged(ackPath)
        XCTAssertFalse(acked.isEmpty)
        var seen: [String: Set<[Int]>] = [:]
        try waitUntil("every acknowledged record to be processed", seconds: seconds) {
            seen = [:]
            for member in members {
                for record in member.records {
                    seen[record.value, default: []].insert([record.partition, record.offset])
                }
            }
            return acked.keys.allSatisfy { seen[$0] != nil }
        }
        for (value, at) in acked {
            XCTAssertEqual(seen[value], [[at.partition, at.offset]], "value \(value) was processed elsewhere")
        }
    }

    /// Waits until the members' last commits reach the log end of every partition (what was processed was
    /// committed).
    func waitCommittedToEnd(_ members: [GroupMember], ackPath: String, seconds: Double = 60) throws {
        var ends: [Int: Int] = [:]
        for (_, at) in acknowledged(ackPath) { ends[at.partition] = max(ends[at.partition] ?? 0, at.offset + 1) }
        try waitUntil("commits to reach the log end of every partition", seconds: seconds) {
            let committed = members.map(\.lastCommitted).reduce(into: [Int: Int]()) {
                $0.merge($1, uniquingKeysWith: max)
            }
            return ends.allSatisfy { committed[$0.key] == $0.value }
        }
    }

    /// Checks that each of `partitions`, once `diedAt` passed, was taken up by one of `survivors` at or after
    /// what the dead member had last committed (`committed`): no reprocessing from before a commit.
    func checkTakenUp(
        _ partitions: Set<Int>, committed: [Int: Int], after diedAt: Double, by survivors: [GroupMember],
        context: @autoclosure () -> String = ""
    ) {
        for partition in partitions {
            let resumed = survivors.compactMap { member in
                member.records.first { $0.partition == partition && $0.time > diedAt }?.offset
            }.min()
            XCTAssertNotNil(resumed, "nobody took up partition \(partition)")
            XCTAssertGreaterThanOrEqual(
                resumed ?? -1, committed[partition] ?? 0,
                "partition \(partition) was reprocessed from before its last commit\(context())")
        }
    }

    /// Three confluent-kafka members of one group on a 6-partition topic get two partitions each; a fourth
    /// joins and the load spreads; one is SIGKILLed and its partitions move to the others within the session
    /// timeout. All the while an idempotent producer writes, and the members commit after processing: every
    /// acknowledged record is processed, none skipped.
    func testMembersShareSixPartitionsAndTheLoadFollowsJoinsAndDeaths() throws {
        let cluster = try LocalCluster(name: "groups-share")
        defer { cluster.remove() }
        try cluster.startAll()
        try createTopic(cluster, "work", partitions: 6)
        let ackPath = cluster.root + "/acks"
        let producing = try producer(
            cluster, topic: "work", partitions: 6, count: 15_000, ackPath: ackPath, extra: ["--pace-ms", "100"])
        var members = try (1...3).map {
            try GroupMember("confluent", name: "m\($0)", cluster: cluster, topic: "work", group: "workers")
        }
        defer { for member in members { member.kill() } }
        try waitForAssignments(members, cover: 6, sizes: [2, 2, 2])
        members.append(try GroupMember("confluent", name: "m4", cluster: cluster, topic: "work", group: "workers"))
        try waitForAssignments(members, cover: 6, sizes: [2, 2, 1, 1])
        XCTAssertEqual(members[3].assignment.count, 1, "the newcomer took a share")
        XCTAssertLessThan(acknowledged(ackPath).count, 15_000, "the producer finished early; the test proves little")
        let victim = members.first { $0.assignment.count == 2 }!
        let orphaned = victim.assignment
        victim.kill()
        let survivors = members.filter { $0 !== victim }
        // The coordinator notices the silence after the 6 s session timeout, then the survivors rejoin.
        try waitForAssignments(survivors, cover: 6, sizes: [2, 2, 2], seconds: 6 + 10)
        try finish(producing, cluster)
        try checkEverythingProcessed(members, ackPath: ackPath)
        try waitCommittedToEnd(survivors, ackPath: ackPath)
        // The orphaned partitions were taken up where the dead member had committed.
        let diedAt = victim.events.last?["t"] as? Double ?? 0
        checkTakenUp(orphaned, committed: victim.lastCommitted, after: diedAt, by: survivors)
        for member in survivors { try member.stop() }
    }

    /// A confluent-kafka, a kafka-python and an aiokafka member share one group (their common assignor is
    /// round robin): two partitions each, everything processed and committed; when one leaves the others take
    /// its partitions over.
    func testConfluentKafkaPythonAndAiokafkaMembersShareAGroup() throws {
        let cluster = try LocalCluster(name: "groups-mixed")
        defer { cluster.remove() }
        try cluster.startAll()
        try createTopic(cluster, "mixed", partitions: 6)
        let members = try ["confluent", "kafka-python", "aiokafka"].map {
            try GroupMember($0, name: $0, cluster: cluster, topic: "mixed", group: "polyglot")
        }
        defer { for member in members { member.kill() } }
        try waitForAssignments(members, cover: 6, sizes: [2, 2, 2], seconds: 60)
        let keel = try BrokerProcess.keelBinary().path
        let described = try runCommand(keel, ["group", "describe", "polyglot", "--bootstrap", cluster.bootstrap])
        XCTAssertTrue(described.output.contains("protocol consumer/roundrobin"), described.output)
        let ackPath = cluster.root + "/acks"
        try finish(try producer(cluster, topic: "mixed", partitions: 6, count: 3_000, ackPath: ackPath), cluster)
        try checkEverythingProcessed(members, ackPath: ackPath)
        try waitCommittedToEnd(members, ackPath: ackPath)
        for member in members { XCTAssertGreaterThan(member.records.count, 0, "\(member.name) processed nothing") }
        try members[2].stop()
        try waitForAssignments(Array(members.prefix(2)), cover: 6, sizes: [3, 3], seconds: 30)
        let laterPath = cluster.root + "/later-acks"
        try finish(
            try producer(cluster, topic: "mixed", partitions: 6, first: 3_000, count: 600, ackPath: laterPath), cluster)
        try checkEverythingProcessed(Array(members.prefix(2)), ackPath: laterPath)
        for member in members.prefix(2) { try member.stop() }
    }

    /// The node of the group's coordinator is SIGKILLed: the group goes on (commits succeed with the new
    /// coordinator), and when a member then dies, its partitions are taken up from what it had committed, no
    /// further back.
    func testTheGroupGoesOnWhenItsCoordinatorsNodeIsKilled() throws {
        let cluster = try LocalCluster(name: "groups-coordinator")
        defer { cluster.remove() }
        try cluster.startAll()
        try createTopic(cluster, "jobs", partitions: 6)
        let ackPath = cluster.root + "/acks"
        let producing = try producer(
            cluster, topic: "jobs", partitions: 6, count: 15_000, ackPath: ackPath, extra: ["--pace-ms", "100"])
        let members = try (1...2).map {
            try GroupMember("confluent", name: "m\($0)", cluster: cluster, topic: "jobs", group: "movers")
        }
        defer { for member in members { member.kill() } }
        try waitForAssignments(members, cover: 6, sizes: [3, 3])
        try waitUntil("both members to commit", seconds: 30) { members.allSatisfy { !$0.commits.isEmpty } }
        let connection = try RawConnection(port: cluster.clientPorts[0], timeoutSeconds: 30)
        let found = try connection.roundTrip(FindCoordinatorRequest(key: "movers", keyType: 0), version: 1)
        XCTAssertEqual(found.errorCode, ErrorCode.none)
        let coordinator = Int(found.nodeId)
        try cluster.stop(coordinator, signal: SIGKILL)
        let killedAt = Date().timeIntervalSince1970
        try waitUntil("both members to commit with the new coordinator", seconds: 60) {
            members.allSatisfy { member in member.commits.contains { $0.time > killedAt + 1 } }
        }
        XCTAssertLessThan(acknowledged(ackPath).count, 15_000, "the producer finished early; the test proves little")
        let victim = members[0]
        let orphaned = victim.assignment
        victim.kill()
        let committed = victim.lastCommitted
        let diedAt = Date().timeIntervalSince1970
        try waitForAssignments([members[1]], cover: 6, sizes: [6], seconds: 6 + 10)
        try finish(producing, cluster)
        try checkEverythingProcessed(members, ackPath: ackPath)
        checkTakenUp(orphaned, committed: committed, after: diedAt, by: [members[1]], context: "\n\(cluster.logs())")
        try waitCommittedToEnd([members[1]], ackPath: ackPath)
        try members[1].stop()
    }

    /// A static member (group.instance.id) that is SIGKILLed and restarts within its session timeout gets its
    /// partitions back with no rebalance: the other member's assignment never changes.
    func testAStaticMemberRestartsWithoutARebalance() throws {
        let cluster = try LocalCluster(name: "groups-static")
        defer { cluster.remove() }
        try cluster.startAll()
        try createTopic(cluster, "steady", partitions: 6)
        var first = try GroupMember(
            "confluent", name: "a", cluster: cluster, topic: "steady", group: "statics", instance: "a")
        let other = try GroupMember(
            "confluent", name: "b", cluster: cluster, topic: "steady", group: "statics", instance: "b")
        defer {
            first.kill()
            other.kill()
        }
        try waitForAssignments([first, other], cover: 6, sizes: [3, 3])
        let before = first.assignment
        first.kill()
        first = try GroupMember(
            "confluent", name: "a-again", cluster: cluster, topic: "steady", group: "statics", instance: "a")
        try waitUntil("the restarted member's assignment", seconds: 30) { !first.assignment.isEmpty }
        XCTAssertEqual(first.assignment, before, "the static member got its own partitions back")
        // Records produced now reach both members, the restarted one included, with nothing moved.
        let ackPath = cluster.root + "/acks"
        try finish(try producer(cluster, topic: "steady", partitions: 6, count: 1_200, ackPath: ackPath), cluster)
        try checkEverythingProcessed([first, other], ackPath: ackPath)
        XCTAssertEqual(other.count("assigned"), 1, "the other member was reassigned:\n\(other.events)")
        XCTAssertEqual(other.count("revoked"), 0, "the other member lost its partitions:\n\(other.events)")
        XCTAssertEqual(first.count("assigned"), 1)
        try first.stop()
        try other.stop()
    }

    /// `keel group describe` shows the lag per partition; `keel group reset-offsets --to-datetime` moves an
    /// idle group back to the first record at or after a time, and its next member replays from there.
    func testResetOffsetsToATimeReplaysFromThere() throws {
        let cluster = try LocalCluster(name: "groups-replay")
        defer { cluster.remove() }
        try cluster.startAll()
        try createTopic(cluster, "history", partitions: 3)
        let now = Int(Date().timeIntervalSince1970 * 1000)
        let oldPath = cluster.root + "/old-acks"
        let newPath = cluster.root + "/new-acks"
        try finish(
            try producer(
                cluster, topic: "history", partitions: 3, count: 300, ackPath: oldPath,
                extra: ["--timestamp-ms", String(now - 7_200_000)]), cluster)
        try finish(
            try producer(
                cluster, topic: "history", partitions: 3, first: 300, count: 300, ackPath: newPath,
                extra: ["--timestamp-ms", String(now - 3_600_000)]), cluster)
        let reader = try GroupMember(
            "kafka-python", name: "reader", cluster: cluster, topic: "history", group: "replay")
        defer { reader.kill() }
        try checkEverythingProcessed([reader], ackPath: oldPath)
        try checkEverythingProcessed([reader], ackPath: newPath)
        try waitCommittedToEnd([reader], ackPath: newPath)
        try reader.stop()

        let keel = try BrokerProcess.keelBinary().path
        func lags() throws -> [Int: Int] {
            let described = try runCommand(keel, ["group", "describe", "replay", "--bootstrap", cluster.bootstrap])
            XCTAssertEqual(described.status, 0, described.output)
            var lags: [Int: Int] = [:]
            for line in described.output.split(separator: "\n") {
                let fields = line.split(separator: " ", omittingEmptySubsequences: true)
                if fields.count >= 5, fields[0] == "history", let p = Int(fields[1]), let lag = Int(fields[4]) {
                    lags[p] = lag
                }
            }
            return lags
        }
        XCTAssertEqual(try lags(), [0: 0, 1: 0, 2: 0])
        let reset = try runCommand(
            keel,
            [
                "group", "reset-offsets", "replay", "--topic", "history", "--to-datetime", String(now - 5_400_000),
                "--execute", "--bootstrap", cluster.bootstrap,
            ])
        XCTAssertEqual(reset.status, 0, reset.output)
        XCTAssertEqual(try lags(), [0: 100, 1: 100, 2: 100], "the lag is what is to be replayed")

        let replayer = try GroupMember(
            "aiokafka", name: "replayer", cluster: cluster, topic: "history", group: "replay")
        defer { replayer.kill() }
        try checkEverythingProcessed([replayer], ackPath: newPath)
        try waitCommittedToEnd([replayer], ackPath: newPath)
        let replayed = replayer.records.map(\.value)
        XCTAssertEqual(Set(replayed), Set((300..<600).map(String.init)), "exactly the records from that time on")
        XCTAssertEqual(replayed.count, 300, "each once")
        try replayer.stop()
    }
}
