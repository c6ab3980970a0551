import Foundation
import KafkaProtocol
import NIOCore
import Records
import XCTest

@testable import KeelClient

/// KeelConsumer against librdkafka's mock cluster, a genuine implementation of the classic group
/// protocol (FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup, OffsetCommit,
/// OffsetFetch), alone and in one group with a confluent-kafka consumer.
///
/// The mock completes a rebalance on timers: 3 s after the first join, and session timeout
/// minus 1 s after a change in a running group. The session timeout here is 4.5 s: the mock
/// checks sessions once a second, and a session as short as the 3 s first-join delay can expire
/// a member that is still waiting for that join to complete.
final class MockClusterGroupTests: XCTestCase {
    private var cluster: MockCluster!
    private var clients: [KeelClient] = []
    private var consumers: [KeelConsumer] = []
    private var children: [BackgroundProcess] = []

    override func setUp() async throws {
        cluster = try MockCluster(brokers: 3)
    }

    override func tearDown() async throws {
        for consumer in consumers { await consumer.close() }
        for client in clients { await client.close() }
        for child in children { child.stop() }
        cluster?.stop()
    }

    private func client() throws -> KeelClient {
        let client = try KeelClient(bootstrap: cluster.bootstrap)
        clients.append(client)
        return client
    }

    private func consumer(
        group: String,
        topic: String,
        _ body: (inout ConsumerConfiguration) -> Void = { _ in }
    ) async throws -> KeelConsumer {
        var configuration = ConsumerConfiguration(groupId: group)
        configuration.sessionTimeoutMs = 4_500
        configuration.heartbeatIntervalMs = 300
        configuration.autoOffsetReset = .earliest
        configuration.autoCommitIntervalMs = 200
        configuration.fetchMaxWaitMs = 200
        body(&configuration)
        let consumer = try KeelConsumer(client: try client(), configuration: configuration)
        consumers.append(consumer)
        try await consumer.subscribe([topic])
        return consumer
    }

    /// Writes `perPartition` records to each partition of `topic` (auto-created with 4 partitions).
    private func produce(_ topic: String, perPartition: Int, tag: String) async throws {
        let producer = try await KeelProducer(client: try client())
        for partition in Int32(0)..<4 {
            for index in 0..<perPartition {
                try await producer.enqueue(
                    topic: topic, key: nil, value: ByteBuffer(string: "\(tag)-\(partition)-\(index)"),
                    partition: partition)
            }
        }
        try await producer.flush()
    }

    private func partitions(_ topic: String, _ indexes: [Int32]) -> [TopicPartition] {
        indexes.map { TopicPartition(topic: topic, partition: $0) }
    }

    /// Reads from `consumer` until `wanted` values have all arrived (duplicates allowed), for at most 30 s.
    private func read(_ consumer: KeelConsumer, until wanted: Set<String>) async throws -> [ConsumerRecord] {
        var records: [ConsumerRecord] = []
        var missing = wanted
        let deadline = Date().addingTimeInterval(30)
        while !missing.isEmpty && Date() < deadline {
            guard let record = try await consumer.poll(timeoutMs: 1_000) else { continue }
            records.append(record)
            missing.remove(record.value.map { String(buffer: $0) } ?? "")
        }
        XCTAssertTrue(missing.isEmpty, "never came: \(missing.sorted().prefix(5))")
        return records
    }

    /// Two KeelConsumers in one group split a 4-partition topic 2/2 and read every record once;
    /// when one closes (committing, then LeaveGroup) the other takes all four partitions over and
    /// reads on from the committed offsets.
    func testTwoMembersSplitATopicAndOneTakesOverWhenTheOtherLeaves() async throws {
        try await produce("split", perPartition: 5, tag: "first")
        let one = try await consumer(group: "split-group", topic: "split")
        let two = try await consumer(group: "split-group", topic: "split")
        try await eventually("a 2/2 split", seconds: 30) {
            let a = await one.assignment
            let b = await two.assignment
            return a.count == 2 && b.count == 2 && Set(a + b).count == 4
        }
        let firstValues = Set((0..<4).flatMap { partition in (0..<5).map { "first-\(partition)-\($0)" } })
        let ownedByOne = Set(await one.assignment.map(\.partition))
        let wantedByOne = firstValues.filter { ownedByOne.contains(Int32(String($0.split(separator: "-")[1])) ?? -1) }
        let readByOne = try await read(one, until: wantedByOne)
        let readByTwo = try await read(two, until: firstValues.subtracting(wantedByOne))
        XCTAssertTrue(readByOne.allSatisfy { ownedByOne.contains($0.partition) })
        XCTAssertTrue(readByTwo.allSatisfy { !ownedByOne.contains($0.partition) })
        XCTAssertEqual(readByOne.count + readByTwo.count, 20, "every record once")

        await one.close()
        try await eventually("the survivor owns all four", seconds: 30) { await two.assignment.count == 4 }
        let survivor = await two.assignment
        XCTAssertEqual(survivor, partitions("split", [0, 1, 2, 3]))
        try await produce("split", perPartition: 1, tag: "second")
        let after = try await read(two, until: Set((0..<4).map { "second-\($0)-0" }))
        // The leaver committed on close: its partitions resume after what it read.
        XCTAssertFalse(
            after.contains {
                ownedByOne.contains($0.partition) && String(buffer: $0.value ?? ByteBuffer()).hasPrefix("first")
            })
    }

    /// Positions committed by one consumer are where the next member of the group starts; the
    /// committed offset is the next offset to read.
    func testCommitThenRestartResumesFromTheCommittedOffset() async throws {
        let producer = try await KeelProducer(client: try client())
        for index in 0..<20 {
            try await producer.enqueue(topic: "resume", key: nil, value: ByteBuffer(string: "r\(index)"), partition: 0)
        }
        try await producer.flush()
        let first = try await consumer(group: "resume-group", topic: "resume") { $0.enableAutoCommit = false }
        var records: [ConsumerRecord] = []
        while records.count < 10 {
            guard let record = try await first.poll(timeoutMs: 30_000) else { return XCTFail("no record") }
            records.append(record)
        }
        XCTAssertEqual(records.map(\.offset.value), Array(0..<10))
        try await first.commit()
        await first.close()
        let committed = try await clients[0].committedOffsets(
            group: "resume-group", partitions: partitions("resume", [0]))
        XCTAssertEqual(committed, [TopicPartition(topic: "resume", partition: 0): Offset(10)])

        let second = try await consumer(group: "resume-group", topic: "resume")
        let next = try await second.poll(timeoutMs: 30_000)
        XCTAssertEqual(next?.offset, Offset(10))
        XCTAssertEqual(next?.value.map { String(buffer: $0) }, "r10")
    }

    /// A KeelConsumer and a confluent-kafka consumer in one group share a topic's partitions,
    /// with each of them leading once (the mock elects the lowest group.instance.id): the Keel
    /// leader reads librdkafka's subscription and librdkafka reads the Keel leader's assignment,
    /// and the other way round. Range and roundrobin give what Kafka's assignors give.
    func testKeelAndLibrdkafkaShareOneGroup() async throws {
        let cases: [(topic: String, assignor: PartitionAssignor, keel: String, rdkafka: String, keelGets: [Int32])] = [
            ("mixed-range", .range, "a-keel", "b-rdkafka", [0, 1]),
            ("mixed-roundrobin", .roundRobin, "b-keel", "a-rdkafka", [1, 3]),
        ]
        for entry in cases {
            try await produce(entry.topic, perPartition: 2, tag: entry.topic)
            let arguments: [String: Any] = [
                "bootstrap": cluster.bootstrap, "group": entry.topic, "topic": entry.topic,
                "assignor": entry.assignor.protocolName, "instance": entry.rdkafka, "session_timeout_ms": 4_500,
            ]
            let json = String(decoding: try JSONSerialization.data(withJSONObject: arguments), as: UTF8.self)
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Support/group_member.py")
            let member = try BackgroundProcess(["python3", script.path, json])
            children.append(member)
            let keel = try await consumer(group: entry.topic, topic: entry.topic) {
                $0.assignors = [entry.assignor]
                $0.groupInstanceId = entry.keel
            }
            let expectedKeel = partitions(entry.topic, entry.keelGets)
            let expectedRdkafka = partitions(entry.topic, [0, 1, 2, 3].filter { !entry.keelGets.contains($0) })
            let rdkafkaLine = "assigned " + expectedRdkafka.map(\.description).joined(separator: ",")
            do {
                try await eventually("\(entry.topic): both members assigned", seconds: 40) {
                    let latest = member.lines.last { $0.hasPrefix("assigned") }
                    return await keel.assignment == expectedKeel && latest == rdkafkaLine
                }
            } catch {
                let state = await (keel.assignment, keel.generationId, keel.isLeader)
                XCTFail("keel (assignment, generation, leads) \(state); librdkafka printed \(member.lines)")
                throw error
            }
            // The lower instance id leads: Keel in the first case, librdkafka in the second.
            let keelLeads = await keel.isLeader
            XCTAssertEqual(keelLeads, entry.keel < entry.rdkafka, entry.topic)
            // Both read their own partitions' records.
            let keelValues = Set(
                entry.keelGets.flatMap { partition in (0..<2).map { "\(entry.topic)-\(partition)-\($0)" } })
            let read = try await read(keel, until: keelValues)
            XCTAssertTrue(read.allSatisfy { entry.keelGets.contains($0.partition) })
            try await eventually("\(entry.topic): librdkafka read its records", seconds: 30) {
                Set(member.lines.filter { $0.hasPrefix("record ") }.map { $0.split(separator: " ")[1] }).count == 2
            }
            let rdkafkaPartitions = Set(
                member.lines.filter { $0.hasPrefix("record ") }.compactMap { Int32($0.split(separator: " ")[1]) })
            XCTAssertEqual(rdkafkaPartitions, Set(expectedRdkafka.map(\.partition)))
        }
    }
}
