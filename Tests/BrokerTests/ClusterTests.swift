// Multi-node clusters of real `keel broker` processes on loopback, driven by real clients (confluent-kafka,
// kcat): leaders killed with SIGKILL and restarted, leaders paused with SIGSTOP, a node down for good. Every
// acknowledged record must be read back exactly once, in order, and the replicas must end byte for byte equal.
import Foundation
import KafkaProtocol
import XCTest

/// Several `keel broker` processes forming one cluster, each with its own ports and data directory.
final class LocalCluster {
    let size: Int
    let root: String
    let clientPorts: [Int]
    let clusterPorts: [Int]
    var nodes: [Int: BrokerProcess] = [:]
    let arguments: [String]

    init(size: Int = 3, name: String, arguments: [String] = []) throws {
        self.size = size
        root = try makeTemporaryDirectory(name)
        let ports = try freePorts(2 * size)
        clientPorts = Array(ports.prefix(size))
        clusterPorts = Array(ports.suffix(size))
        self.arguments = arguments
    }

    var voters: String {
        (1...size).map { "\($0)@127.0.0.1:\(clusterPorts[$0 - 1])" }.joined(separator: ",")
    }

    var bootstrap: String { clientPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") }

    func directory(_ node: Int) -> String { root + "/node-\(node)" }

    /// Starts every node (they find each other), then waits until each has caught up.
    func startAll() throws {
        for node in 1...size { try start(node, waitForReady: false) }
        for node in 1...size { try waitReady(node) }
    }

    func start(_ node: Int, waitForReady: Bool = true) throws {
        nodes[node] = try BrokerProcess(
            dataDirectory: directory(node), port: clientPorts[node - 1],
            arguments: [
                "--id", String(node), "--cluster-listen", "127.0.0.1:\(clusterPorts[node - 1])", "--voters", voters,
            ] + arguments)
        if waitForReady { try waitReady(node) }
    }

    func waitReady(_ node: Int, seconds: Double = 60) throws {
        guard let process = nodes[node] else { throw TestFailure("node \(node) is not running") }
        try waitUntil("node \(node) to catch up (log: \(process.logPath))", seconds: seconds) {
            process.stdout.contains("keel broker ready")
        }
    }

    /// SIGKILL (or another signal) and wait for the exit.
    func stop(_ node: Int, signal: Int32 = SIGKILL) throws {
        guard let process = nodes.removeValue(forKey: node) else { return }
        _ = try process.stop(signal: signal)
    }

    func signal(_ node: Int, _ signal: Int32) {
        guard let process = nodes[node] else { return }
        kill(process.process.processIdentifier, signal)
    }

    /// What `node` last wrote to its status file.
    func status(_ node: Int) -> [String: Any]? {
        let path = directory(node) + "/status.json"
        guard let data = FileManager.default.contents(atPath: path),
            let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return nil }
        return object
    }

    func replica(_ node: Int, topic: String, partition: Int) -> [String: Any]? {
        let replicas = status(node)?["replicas"] as? [[String: Any]] ?? []
        return replicas.first { ($0["topic"] as? String) == topic && ($0["partition"] as? Int) == partition }
    }

    /// The node that leads `topic`-`partition` by its own report, among the running nodes.
    func leader(topic: String, partition: Int = 0) -> Int? {
        nodes.keys.sorted().first { node in
            (replica(node, topic: topic, partition: partition)?["is_leader"] as? Bool) == true
        }
    }

    func waitForLeader(topic: String, partition: Int = 0, excluding: Int? = nil, seconds: Double = 30) throws -> Int {
        var found: Int?
        try waitUntil("a leader of \(topic)-\(partition)", seconds: seconds) {
            found = leader(topic: topic, partition: partition)
            return found != nil && found != excluding
        }
        guard let found else { throw TestFailure("no leader") }
        return found
    }

    /// The bytes of every segment of `node`'s replica, in offset order.
    func segmentBytes(_ node: Int, topic: String, partition: Int = 0) throws -> Data {
        let directory = directory(node) + "/\(topic)-\(partition)"
        let names = try FileManager.default.contentsOfDirectory(atPath: directory).filter { $0.hasSuffix(".log") }
            .sorted()
        var bytes = Data()
        for name in names {
            bytes.append(try Data(contentsOf: URL(fileURLWithPath: directory + "/" + name)))
        }
        return bytes
    }

    /// Waits until the running nodes' replicas of the partition report the same high watermark and log end
    /// (nothing uncommitted, everyone caught up), then until their segment bytes are equal.
    func waitConverged(topic: String, partition: Int = 0, seconds: Double = 60) throws {
        try waitUntil("the replicas of \(topic)-\(partition) to converge", seconds: seconds) {
            let reports = nodes.keys.map { replica($0, topic: topic, partition: partition) }
            let ends = reports.map { ($0?["high_watermark"] as? Int, $0?["log_end"] as? Int) }
            guard let first = ends.first, first.0 != nil, first.0 == first.1,
                ends.allSatisfy({ $0 == first })
            else { return false }
            let bytes = try nodes.keys.map { try segmentBytes($0, topic: topic, partition: partition) }
            return bytes.allSatisfy { $0 == bytes[0] }
        }
    }

    func stopAll() {
        for node in Array(nodes.keys) { try? stop(node, signal: SIGTERM) }
    }

    func remove() {
        stopAll()
        try? FileManager.default.removeItem(atPath: root)
    }

    func logs() -> String {
        (1...size).map { node in
            "--- node \(node) ---\n" + ((try? String(contentsOfFile: directory(node) + ".log", encoding: .utf8)) ?? "")
        }.joined(separator: "\n")
    }
}

/// Creates a topic of `partitions` partitions with three replicas through node 1.
func createTopic(_ cluster: LocalCluster, _ name: String, partitions: Int32 = 1) throws {
    let connection = try RawConnection(port: cluster.clientPorts[0], timeoutSeconds: 30)
    let created = try connection.roundTrip(
        CreateTopicsRequest(
            topics: [.init(name: name, numPartitions: partitions, replicationFactor: 3, assignments: [], configs: [])],
            timeoutMs: 20_000, validateOnly: false),
        version: 3)
    XCTAssertEqual(created.topics.first?.errorCode, ErrorCode.none, created.topics.first?.errorMessage ?? "")
}

final class ClusterTests: XCTestCase {
    func acknowledged(_ path: String) -> [Int] {
        ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0) }
    }

    /// Reads the partition back in full with kcat and checks it holds 0..<count exactly once, in order, and every
    /// acknowledged value.
    func checkReadBack(_ cluster: LocalCluster, topic: String, count: Int, acked: [Int]) throws {
        let consumed = try runCommand(
            "kcat", ["-b", cluster.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%s\n"],
            seconds: 60)
        XCTAssertEqual(consumed.status, 0, consumed.output)
        let values = consumed.output.split(separator: "\n").compactMap { Int($0) }
        XCTAssertEqual(Set(values).count, values.count, "duplicates in the log")
        XCTAssertEqual(values, values.sorted(), "the log is out of order")
        let missing = Set(acked).subtracting(values)
        XCTAssertTrue(missing.isEmpty, "acknowledged but lost: \(missing.sorted().prefix(10))")
        XCTAssertEqual(values.count, count, "every message is there exactly once")
    }

    /// The leader of a partition is SIGKILLed while an idempotent acks=all producer writes; the producer goes on
    /// with the new leader; the old leader restarts and catches up. Every acknowledged record is there exactly
    /// once and in order, and the restarted node's log is byte for byte the leader's.
    func testAKilledLeaderIsReplacedAndItsRestartCatchesUpByteForByte() throws {
        let cluster = try LocalCluster(name: "cluster-kill")
        defer { cluster.remove() }
        try cluster.startAll()
        try createTopic(cluster, "failover")
        let ackPath = cluster.root + "/acks"
        let count = 20_000
        let producer = try ChildProcess(
            "python3",
            [
                interopDirectory.appendingPathComponent("cluster_producer.py").path, cluster.bootstrap, "failover",
                String(count), ackPath, "5",
            ], outputPath: cluster.root + "/producer.out")
        try waitUntil("2000 acknowledgements before the kill", seconds: 60) { acknowledged(ackPath).count >= 2000 }
        let victim = try cluster.waitForLeader(topic: "failover")
        try cluster.stop(victim, signal: SIGKILL)
        let atKill = acknowledged(ackPath).count
        XCTAssertLessThan(atKill, count, "the producer finished before the kill; the test proves nothing")
        let successor = try cluster.waitForLeader(topic: "failover", excluding: victim)
        XCTAssertNotEqual(successor, victim)
        try waitUntil("acknowledgements from the new leader", seconds: 60) { acknowledged(ackPath).count > atKill + 500 }
        try cluster.start(victim)
        let result = try producer.wait(seconds: 180)
        XCTAssertEqual(result.status, 0, "producer failed:\n\(result.output)\n\(cluster.logs())")
        try checkReadBack(cluster, topic: "failover", count: count, acked: acknowledged(ackPath))
        try cluster.waitConverged(topic: "failover")
    }

    /// A SIGSTOP-paused leader is replaced; once resumed it steps down to follower, having acknowledged nothing
    /// that was lost, and catches up.
    func testAPausedLeaderIsReplacedAndStepsDownWhenResumed() throws {
        let cluster = try LocalCluster(name: "cluster-pause")
        defer { cluster.remove() }
        try cluster.startAll()
        try createTopic(cluster, "paused")
        let ackPath = cluster.root + "/acks"
        let count = 12_000
        let producer = try ChildProcess(
            "python3",
            [
                interopDirectory.appendingPathComponent("cluster_producer.py").path, cluster.bootstrap, "paused",
                String(count), ackPath, "10",
            ], outputPath: cluster.root + "/producer.out")
        try waitUntil("1000 acknowledgements before the pause", seconds: 60) { acknowledged(ackPath).count >= 1000 }
        let paused = try cluster.waitForLeader(topic: "paused")
        cluster.signal(paused, SIGSTOP)
        let atPause = acknowledged(ackPath).count
        // The others elect a new leader and the producer goes on with it. The paused node's own status file is
        // stale (it still says it leads), so the successor is found among the others.
        var successor: Int?
        try waitUntil("a new leader while node \(paused) is paused", seconds: 30) {
            successor = cluster.nodes.keys.sorted().first { node in
                node != paused && (cluster.replica(node, topic: "paused", partition: 0)?["is_leader"] as? Bool) == true
            }
            return successor != nil
        }
        try waitUntil("acknowledgements while node \(paused) is paused", seconds: 60) {
            acknowledged(ackPath).count > atPause + 500
        }
        cluster.signal(paused, SIGCONT)
        try waitUntil("node \(paused) to step down", seconds: 30) {
            let report = cluster.replica(paused, topic: "paused", partition: 0)
            let leaderTerm = cluster.replica(successor ?? 0, topic: "paused", partition: 0)?["term"] as? Int
            return (report?["is_leader"] as? Bool) == false && (report?["term"] as? Int) == leaderTerm
        }
        let result = try producer.wait(seconds: 180)
        XCTAssertEqual(result.status, 0, "producer failed:\n\(result.output)\n\(cluster.logs())")
        try checkReadBack(cluster, topic: "paused", count: count, acked: acknowledged(ackPath))
        try cluster.waitConverged(topic: "paused")
    }

    /// With one node of three down for good, the other two elect leaders (of the controller and of every
    /// partition) and take every write; topics can still be created.
    func testWritesContinueWithOneNodeDownForGood() throws {
        let cluster = try LocalCluster(name: "cluster-down")
        defer { cluster.remove() }
        try cluster.startAll()
        try createTopic(cluster, "degraded", partitions: 3)
        try cluster.stop(3, signal: SIGKILL)
        try createTopic(cluster, "later", partitions: 1)
        let ackPath = cluster.root + "/acks"
        let count = 5_000
        let producer = try ChildProcess(
            "python3",
            [
                interopDirectory.appendingPathComponent("cluster_producer.py").path,
                "127.0.0.1:\(cluster.clientPorts[0]),127.0.0.1:\(cluster.clientPorts[1])", "degraded", String(count),
                ackPath,
            ], outputPath: cluster.root + "/producer.out")
        let result = try producer.wait(seconds: 180)
        XCTAssertEqual(result.status, 0, "producer failed:\n\(result.output)\n\(cluster.logs())")
        try checkReadBack(cluster, topic: "degraded", count: count, acked: acknowledged(ackPath))
        let described = try runCommand("kcat", ["-b", cluster.bootstrap, "-L", "-t", "later"], seconds: 30)
        XCTAssertTrue(described.output.contains("partition 0, leader"), described.output)
        XCTAssertFalse(described.output.contains("leader -1"), described.output)
        // The dead node leaves the in-sync replicas of every partition once it has been silent for the lag limit.
        let connection = try RawConnection(port: cluster.clientPorts[0], timeoutSeconds: 30)
        try waitUntil("node 3 to leave the in-sync replicas", seconds: 40) {
            let answer = try connection.roundTrip(
                MetadataRequest(topics: [.init(name: "degraded")], allowAutoTopicCreation: false), version: 4)
            let partitions = answer.topics.first?.partitions ?? []
            return partitions.count == 3
                && partitions.allSatisfy { $0.replicaNodes.count == 3 && $0.isrNodes.sorted() == [1, 2] }
        }
    }

    /// Metadata, CreateTopics and DeleteTopics give the same answer from any node; a replication factor above the
    /// node count is refused; every node advertises the address clients reach it at.
    func testEveryNodeAnswersAdminAndMetadataAlike() throws {
        let cluster = try LocalCluster(name: "cluster-admin")
        defer { cluster.remove() }
        try cluster.startAll()
        let connections = try cluster.clientPorts.map { try RawConnection(port: $0, timeoutSeconds: 30) }
        let tooMany = try connections[1].roundTrip(
            CreateTopicsRequest(
                topics: [.init(name: "wide", numPartitions: 1, replicationFactor: 4, assignments: [], configs: [])],
                timeoutMs: 10_000, validateOnly: false),
            version: 3)
        XCTAssertEqual(tooMany.topics.first?.errorCode, .invalidReplicationFactor)
        let created = try connections[2].roundTrip(
            CreateTopicsRequest(
                topics: [.init(name: "shared", numPartitions: 6, replicationFactor: 3, assignments: [], configs: [])],
                timeoutMs: 10_000, validateOnly: false),
            version: 3)
        XCTAssertEqual(created.topics.first?.errorCode, ErrorCode.none)
        let again = try connections[0].roundTrip(
            CreateTopicsRequest(
                topics: [.init(name: "shared", numPartitions: 6, replicationFactor: 3, assignments: [], configs: [])],
                timeoutMs: 10_000, validateOnly: false),
            version: 3)
        XCTAssertEqual(again.topics.first?.errorCode, .topicAlreadyExists)
        func describe(_ connection: RawConnection) throws -> MetadataResponse {
            try connection.roundTrip(
                MetadataRequest(topics: [.init(name: "shared")], allowAutoTopicCreation: false), version: 4)
        }
        var answers: [MetadataResponse] = []
        try waitUntil("every node to name a leader for every partition", seconds: 30) {
            answers = try connections.map(describe)
            return answers.allSatisfy { answer in
                answer.topics.first?.partitions.count == 6 && answer.topics.first?.partitions.allSatisfy {
                    $0.leaderId > 0
                } == true
            }
        }
        for answer in answers {
            XCTAssertEqual(answer.brokers.map(\.nodeId).sorted(), [1, 2, 3])
            XCTAssertEqual(answer.brokers.map(\.port).sorted(), cluster.clientPorts.map(Int32.init).sorted())
            XCTAssertEqual(answer.topics.first?.partitions.map(\.leaderId), answers[0].topics.first?.partitions.map(\.leaderId))
            XCTAssertEqual(answer.controllerId, answers[0].controllerId)
            XCTAssertEqual(answer.topics.first?.partitions.first?.replicaNodes.count, 3)
        }
        // Leaders are spread: every node leads two of the six partitions.
        let leaders = answers[0].topics.first?.partitions.map(\.leaderId) ?? []
        XCTAssertEqual(Dictionary(grouping: leaders, by: { $0 }).mapValues(\.count), [1: 2, 2: 2, 3: 2])
        let deleted = try connections[1].roundTrip(DeleteTopicsRequest(topicNames: ["shared"], timeoutMs: 10_000), version: 1)
        XCTAssertEqual(deleted.responses.first?.errorCode, ErrorCode.none)
        try waitUntil("every node to forget the topic", seconds: 30) {
            try connections.allSatisfy { try describe($0).topics.first?.errorCode == .unknownTopicOrPartition }
        }
        try waitUntil("every node to remove its replicas", seconds: 30) {
            (1...3).allSatisfy { !FileManager.default.fileExists(atPath: cluster.directory($0) + "/shared-0") }
        }
    }
}
