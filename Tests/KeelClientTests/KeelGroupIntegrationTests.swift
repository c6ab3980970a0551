import Foundation
import KafkaProtocol
import NIOCore
import Records
import XCTest

@testable import KeelClient

/// Consumer groups end to end against a real broker: a `keel broker` child process, or the
/// cluster KEEL_TEST_BOOTSTRAP names (e.g. `cluster/up`'s address, or a Kafka broker).
///
/// Until the broker hosts consumer groups (FindCoordinator answers COORDINATOR_NOT_AVAILABLE)
/// every test here is skipped; once it does, they run. The broker-side expectations are Kafka's:
/// a 3 s initial rebalance delay, session timeouts from 6 s, static members that rejoin without
/// a rebalance, DescribeGroups for lag, standalone commits only while a group is Empty.
final class KeelGroupIntegrationTests: XCTestCase {
    private var broker: KeelBrokerProcess?
    private var bootstrap = ""
    private var clients: [KeelClient] = []
    private var consumers: [KeelConsumer] = []
    private var children: [BackgroundProcess] = []

    /// Whether the broker answers FindCoordinator, probed once per test run.
    private static let hostsGroups = LockedBox<Bool?>(nil)

    override func setUp() async throws {
        if Self.hostsGroups.value == false { throw XCTSkip("the broker does not host consumer groups yet") }
        if let external = ProcessInfo.processInfo.environment["KEEL_TEST_BOOTSTRAP"] {
            bootstrap = external
        } else {
            let started = try KeelBrokerProcess()
            broker = started
            bootstrap = started.bootstrap
        }
        if Self.hostsGroups.value == nil {
            let hosts = try await probeCoordinator()
            Self.hostsGroups.withLock { $0 = hosts }
            if !hosts { throw XCTSkip("the broker does not host consumer groups yet (COORDINATOR_NOT_AVAILABLE)") }
        }
    }

    override func tearDown() async throws {
        for consumer in consumers { await consumer.close() }
        for client in clients { await client.close() }
        for child in children { child.stop() }
        broker?.stop()
    }

    /// FindCoordinator for a fresh group, for up to 10 s (the offsets topic may still be forming).
    private func probeCoordinator() async throws -> Bool {
        let client = try client()
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            do {
                _ = try await client.findCoordinator(group: "probe-\(UInt32.random(in: 0...UInt32.max))")
                return true
            } catch {
                guard error.isRetriable else { return false }
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        return false
    }

    private func client() throws -> KeelClient {
        let client = try KeelClient(bootstrap: bootstrap)
        clients.append(client)
        return client
    }

    private func consumer(
        group: String,
        topic: String,
        _ body: (inout ConsumerConfiguration) -> Void = { _ in }
    ) async throws -> KeelConsumer {
        var configuration = ConsumerConfiguration(groupId: group)
        configuration.sessionTimeoutMs = 6_000
        configuration.heartbeatIntervalMs = 500
        configuration.autoOffsetReset = .earliest
        configuration.autoCommitIntervalMs = 500
        configuration.fetchMaxWaitMs = 200
        body(&configuration)
        let consumer = try KeelConsumer(client: try client(), configuration: configuration)
        consumers.append(consumer)
        try await consumer.subscribe([topic])
        return consumer
    }

    private func topic(_ name: String, partitions: Int32 = 4, perPartition: Int = 3) async throws {
        let admin = try client()
        do {
            try await admin.createTopic(name, partitions: partitions)
        } catch {
            // A broker without CreateTopics (librdkafka's mock) creates topics on first use.
            guard case .unsupportedVersion(.createTopics, _, _) = error else { throw error }
        }
        let producer = try await KeelProducer(client: admin)
        for partition in 0..<partitions {
            for index in 0..<perPartition {
                try await producer.enqueue(
                    topic: name, key: nil, value: ByteBuffer(string: "\(name)-\(partition)-\(index)"),
                    partition: partition)
            }
        }
        try await producer.flush()
    }

    private func all(_ topic: String, _ partitions: [Int32] = [0, 1, 2, 3]) -> [TopicPartition] {
        partitions.map { TopicPartition(topic: topic, partition: $0) }
    }

    /// Two members split four partitions 2/2; when one leaves the other owns all four and resumes
    /// the leaver's partitions from what it committed.
    func testSplitAndTakeOver() async throws {
        try await topic("split")
        let one = try await consumer(group: "split", topic: "split")
        let two = try await consumer(group: "split", topic: "split")
        try await eventually("a 2/2 split", seconds: 60) {
            let a = await one.assignment
            let b = await two.assignment
            return a.count == 2 && b.count == 2 && Set(a + b).count == 4
        }
        await one.close()
        try await eventually("the survivor owns all four", seconds: 60) { await two.assignment == self.all("split") }
    }

    /// What a member committed is where the next member of the group starts.
    func testCommitThenRestartResumes() async throws {
        try await topic("resume", partitions: 1, perPartition: 20)
        let first = try await consumer(group: "resume", topic: "resume") { $0.enableAutoCommit = false }
        for _ in 0..<10 { _ = try await first.poll(timeoutMs: 60_000) }
        try await first.commit()
        await first.close()
        let second = try await consumer(group: "resume", topic: "resume")
        let next = try await second.poll(timeoutMs: 60_000)
        XCTAssertEqual(next?.offset, Offset(10))
    }

    /// A static member that restarts within its session timeout gets its partitions back with no
    /// rebalance: the generation does not change, and the other member keeps its partitions.
    func testStaticMemberRestartsWithoutARebalance() async throws {
        try await topic("static")
        let stay = try await consumer(group: "static", topic: "static") { $0.groupInstanceId = "static-stay" }
        var restarting = try await consumer(group: "static", topic: "static") { $0.groupInstanceId = "static-restart" }
        try await eventually("a 2/2 split", seconds: 60) {
            let a = await stay.assignment
            let b = await restarting.assignment
            return a.count == 2 && b.count == 2
        }
        let generation = await stay.generationId
        let before = await restarting.assignment
        await restarting.close()  // a static member sends no LeaveGroup
        restarting = try await consumer(group: "static", topic: "static") { $0.groupInstanceId = "static-restart" }
        try await eventually("the restarted member's partitions", seconds: 30) { await restarting.assignment == before }
        let after = await restarting.generationId
        let stayed = await stay.generationId
        XCTAssertEqual(after, generation, "no new generation")
        XCTAssertEqual(stayed, generation)
    }

    /// A confluent-kafka consumer and a KeelConsumer in one group split the partitions.
    func testKeelAndConfluentKafkaShareAGroup() async throws {
        try await topic("mixed")
        let arguments: [String: Any] = [
            "bootstrap": bootstrap, "group": "mixed", "topic": "mixed", "assignor": "range",
            "session_timeout_ms": 6_000,
        ]
        let json = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "Support/group_member.py")
        let member = try BackgroundProcess(["python3", script.path, json])
        children.append(member)
        let keel = try await consumer(group: "mixed", topic: "mixed")
        try await eventually("a 2/2 split between the two clients", seconds: 60) {
            guard let line = member.lines.last(where: { $0.hasPrefix("assigned") }) else { return false }
            let theirs = line.dropFirst("assigned ".count).split(separator: ",").map(String.init)
            let ours = await keel.assignment.map(\.description)
            return theirs.count == 2 && ours.count == 2 && Set(theirs + ours).count == 4
        }
    }

    /// Lag is the log end offset minus the committed offset; a group without members can be moved
    /// back (replay) and deleted; a group with members cannot.
    func testLagResetAndDelete() async throws {
        try await topic("admin", partitions: 2, perPartition: 5)
        let reader = try await consumer(group: "admin", topic: "admin") { $0.enableAutoCommit = false }
        for _ in 0..<4 { _ = try await reader.poll(timeoutMs: 60_000) }
        try await reader.commit()
        let admin = try client()
        let busy = try await admin.describeGroup("admin")
        XCTAssertEqual(busy.state, "Stable")
        XCTAssertEqual(Set(busy.members.flatMap(\.assignment)), Set(all("admin", [0, 1])))
        do {
            try await admin.commitOffsets(group: "admin", [TopicPartition(topic: "admin", partition: 0): .zero])
            XCTFail("a group with members refuses commits from outside")
        } catch {}
        await reader.close()

        let committed = try await admin.committedOffsets(group: "admin")
        XCTAssertEqual(committed.values.reduce(0) { $0 + $1.value }, 4)
        try await admin.commitOffsets(
            group: "admin", Dictionary(uniqueKeysWithValues: all("admin", [0, 1]).map { ($0, Offset.zero) }))
        let replayed = try await admin.committedOffsets(group: "admin")
        XCTAssertEqual(Set(replayed.values), [.zero])
        let empty = try await admin.describeGroup("admin")
        XCTAssertEqual(empty.state, "Empty")
        let listed = try await admin.listGroups().map(\.groupId)
        XCTAssertTrue(listed.contains("admin"))
        try await admin.deleteGroup("admin")
        let gone = try await admin.describeGroup("admin")
        XCTAssertEqual(gone.state, "Dead")
    }
}
