import Foundation
import KeelClient
import NIOCore
import XCTest

final class CrossCheckTests: XCTestCase {
    /// For 300 keys of 1 to 40 bytes, the Swift partitioner picks the partition librdkafka's
    /// `murmur2_random` partitioner (the Java client's default) picks.
    func testPartitionerAgreesWithLibrdkafka() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Support/librdkafka_partitions.py")
        let keys = (0..<300).map { index in
            "k\(index)-" + String(repeating: "abcdefghij", count: 4).prefix(index % 38)
        }
        let output = try ChildProcess.run(["python3", script.path], input: keys.joined(separator: "\n") + "\n")
        XCTAssertEqual(output.status, 0, output.stderr)
        var lines = output.stdout.split(separator: "\n")
        let partitions = try XCTUnwrap(Int32(lines.removeFirst()))
        XCTAssertGreaterThan(partitions, 1)
        XCTAssertEqual(lines.count, keys.count)
        for line in lines {
            let fields = line.split(separator: "\t", maxSplits: 1)
            let expected = try XCTUnwrap(Int32(fields[0]))
            let key = String(fields[1])
            XCTAssertEqual(
                Partitioner.partition(forKey: ByteBuffer(string: key), partitionCount: partitions), expected, key)
        }
    }

    /// Runs Support/kafka_python_check.py over `cases` (one JSON object each) and returns its answers.
    private func askKafkaPython(_ cases: [[String: Any]]) throws -> [[String: Any]] {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Support/kafka_python_check.py")
        let input = try cases.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) }
        let output = try ChildProcess.run(["python3", script.path], input: input.joined(separator: "\n") + "\n")
        XCTAssertEqual(output.status, 0, output.stderr)
        return try output.stdout.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    private func hex(_ buffer: ByteBuffer) -> String {
        buffer.readableBytesView.map {
            String($0, radix: 16).count == 1 ? "0\(String($0, radix: 16))" : String($0, radix: 16)
        }
        .joined()
    }

    private func buffer(hex: String) -> ByteBuffer {
        var bytes: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            bytes.append(UInt8(hex[index..<next], radix: 16) ?? 0)
            index = next
        }
        return ByteBuffer(bytes: bytes)
    }

    /// kafka-python 3 generates its consumer protocol classes from Apache Kafka's JSON schemas: for
    /// every subscription version and for assignments, it writes the bytes KeelClient writes, and
    /// reads KeelClient's bytes back to the same fields.
    func testConsumerProtocolBytesMatchKafkasSchemas() throws {
        var cases: [[String: Any]] = []
        var subscriptions: [ConsumerProtocolSubscription] = []
        for version in Int16(0)...3 {
            for topics in [["orders"], ["a", "b-2", "topic.with.dots"]] {
                let owned =
                    version >= 1
                    ? [TopicPartition(topic: topics[0], partition: 0), TopicPartition(topic: topics[0], partition: 7)]
                    : []
                let subscription = ConsumerProtocolSubscription(
                    version: version, topics: topics, ownedPartitions: owned, generationId: version >= 2 ? 42 : -1,
                    rackId: version >= 3 ? "rack-a" : nil)
                subscriptions.append(subscription)
                cases.append([
                    "kind": "subscription", "version": Int(version), "topics": topics,
                    "owned": owned.isEmpty ? [] : [[topics[0], [0, 7]]], "generation": 42,
                    "rack": version >= 3 ? "rack-a" : NSNull(), "hex": hex(subscription.encoded()),
                ])
            }
        }
        let assignment = ConsumerProtocolAssignment(partitions: [
            TopicPartition(topic: "a", partition: 0), TopicPartition(topic: "a", partition: 3),
            TopicPartition(topic: "b", partition: 1),
        ])
        cases.append([
            "kind": "assignment", "partitions": [["a", [0, 3]], ["b", [1]]], "hex": hex(assignment.encoded()),
        ])
        let answers = try askKafkaPython(cases)
        XCTAssertEqual(answers.count, cases.count)
        for (index, subscription) in subscriptions.enumerated() where index < answers.count {
            XCTAssertEqual(answers[index]["hex"] as? String, cases[index]["hex"] as? String, "v\(subscription.version)")
            let decoded = answers[index]["decoded"] as? [String: Any]
            XCTAssertEqual(decoded?["version"] as? Int, Int(subscription.version))
            XCTAssertEqual(decoded?["topics"] as? [String], subscription.topics)
            XCTAssertEqual(decoded?["user_data_hex"] as? String, "")
            let theirs = try ConsumerProtocolSubscription.decode(buffer(hex: answers[index]["hex"] as? String ?? ""))
            XCTAssertEqual(theirs, subscription)
        }
        if let last = answers.last {
            XCTAssertEqual(last["hex"] as? String, hex(assignment.encoded()))
            let decoded = last["decoded"] as? [String: Any]
            XCTAssertEqual((decoded?["partitions"] as? [[Any]])?.count, 2)
        }
    }

    /// For seeded random groups of dynamic members, the range assignor gives what kafka-python's
    /// port of Kafka's RangeAssignor gives, and the roundrobin assignor (equal subscriptions) what
    /// its RoundRobinAssignor port gives.
    func testAssignorsAgreeWithKafkaPython() throws {
        var rng = SplitMix64(state: 20_261_125)
        var cases: [[String: Any]] = []
        var expected: [[String: [TopicPartition]]] = []
        for round in 0..<60 {
            let assignor: PartitionAssignor = round % 2 == 0 ? .range : .roundRobin
            let topics = (0..<Int.random(in: 1...3, using: &rng)).map { "t\($0)" }
            var counts: [String: Int32] = [:]
            for topic in topics { counts[topic] = Int32.random(in: 1...8, using: &rng) }
            let members = (0..<Int.random(in: 1...5, using: &rng)).map { index in
                AssignorMember(
                    memberId: "rdkafka-\(UInt16.random(in: 0...UInt16.max, using: &rng))-\(index)",
                    topics: assignor == .range
                        ? [topics[0]] + topics.dropFirst().filter { _ in Bool.random(using: &rng) } : topics)
            }
            expected.append(assignor.assign(members: members, partitionCounts: counts))
            cases.append([
                "kind": "assign", "assignor": assignor.protocolName, "counts": counts.mapValues { Int($0) },
                "members": members.map { ["id": $0.memberId, "topics": $0.topics] as [String: Any] },
            ])
        }
        let answers = try askKafkaPython(cases)
        XCTAssertEqual(answers.count, cases.count)
        for (round, answer) in answers.enumerated() {
            let theirs = try XCTUnwrap(answer["assignment"] as? [String: [[Any]]])
            var converted: [String: [TopicPartition]] = [:]
            for (member, entries) in theirs {
                converted[member] = entries.compactMap { entry in
                    guard let topic = entry.first as? String, let partition = entry.last as? Int else { return nil }
                    return TopicPartition(topic: topic, partition: Int32(partition))
                }
            }
            XCTAssertEqual(converted, expected[round], "round \(round): \(cases[round])")
        }
    }
}
