import Foundation
import KafkaProtocol
import NIOCore
import XCTest

@testable import KeelClient

/// The consumer protocol bytes, field by field, and what other clients write.
final class ConsumerProtocolTests: XCTestCase {
    private func int16(_ value: Int16) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    private func int32(_ value: Int32) -> [UInt8] { withUnsafeBytes(of: value.bigEndian, Array.init) }
    private func string(_ text: String) -> [UInt8] { int16(Int16(text.utf8.count)) + Array(text.utf8) }
    private func bytes(_ buffer: ByteBuffer) -> [UInt8] { Array(buffer.readableBytesView) }

    /// KeelClient's subscription is v1: version, topics, empty user data, an empty owned-partitions array.
    func testSubscriptionV1Bytes() {
        let encoded = ConsumerProtocolSubscription(topics: ["orders", "t2"]).encoded()
        let expected =
            int16(1) + int32(2) + string("orders") + string("t2")
            + int32(0)  // user data: empty, not null (as librdkafka writes it)
            + int32(0)  // owned partitions: none
        XCTAssertEqual(bytes(encoded), expected)
    }

    /// Every version writes the fields it has and no more, and reads back equal.
    func testSubscriptionVersionsRoundTrip() throws {
        let owned = [TopicPartition(topic: "a", partition: 2), TopicPartition(topic: "a", partition: 0)]
        for version in Int16(0)...3 {
            let subscription = ConsumerProtocolSubscription(
                version: version, topics: ["a", "b"], userData: ByteBuffer(bytes: [7, 8]),
                ownedPartitions: version >= 1 ? owned : [], generationId: version >= 2 ? 12 : -1,
                rackId: version >= 3 ? "rack-1" : nil)
            let decoded = try ConsumerProtocolSubscription.decode(subscription.encoded())
            var expected = subscription
            // Owned partitions are written grouped by topic, partitions ascending.
            expected.ownedPartitions.sort { $0.partition < $1.partition }
            XCTAssertEqual(decoded, expected, "v\(version)")
        }
    }

    /// librdkafka ≥ 2.3 writes v3 (`rd_kafka_consumer_protocol_member_metadata_new`): empty user
    /// data, owned partitions, generation -1 and a null rack; a newer version's extra fields are ignored.
    func testDecodesLibrdkafkaV3AndFutureVersions() throws {
        let librdkafka =
            int16(3) + int32(1) + string("orders") + int32(0)
            + int32(1) + string("orders") + int32(2) + int32(0) + int32(3)
            + int32(-1) + int16(-1)
        let decoded = try ConsumerProtocolSubscription.decode(ByteBuffer(bytes: librdkafka))
        XCTAssertEqual(decoded.version, 3)
        XCTAssertEqual(decoded.topics, ["orders"])
        XCTAssertEqual(decoded.userData, ByteBuffer())
        XCTAssertEqual(
            decoded.ownedPartitions,
            [TopicPartition(topic: "orders", partition: 0), TopicPartition(topic: "orders", partition: 3)])
        XCTAssertEqual(decoded.generationId, -1)
        XCTAssertNil(decoded.rackId)

        // The Java client's null user data (-1), and a v9 with a trailing field nobody knows yet.
        let future = int16(9) + int32(1) + string("x") + int32(-1) + int32(0) + int32(4) + int16(-1) + [1, 2, 3]
        let later = try ConsumerProtocolSubscription.decode(ByteBuffer(bytes: future))
        XCTAssertEqual(later.topics, ["x"])
        XCTAssertNil(later.userData)
        XCTAssertEqual(later.generationId, 4)
    }

    /// The assignment is v0: version, partitions grouped by topic in name order, null user data.
    func testAssignmentV0Bytes() throws {
        let assignment = ConsumerProtocolAssignment(partitions: [
            TopicPartition(topic: "b", partition: 1), TopicPartition(topic: "a", partition: 3),
            TopicPartition(topic: "a", partition: 0),
        ])
        let expected =
            int16(0) + int32(2) + string("a") + int32(2) + int32(0) + int32(3) + string("b") + int32(1) + int32(1)
            + int32(-1)
        XCTAssertEqual(bytes(assignment.encoded()), expected)
        let decoded = try ConsumerProtocolAssignment.decode(assignment.encoded())
        XCTAssertEqual(
            decoded.partitions,
            [
                TopicPartition(topic: "a", partition: 0), TopicPartition(topic: "a", partition: 3),
                TopicPartition(topic: "b", partition: 1),
            ])
        // Zero bytes: what the coordinator hands a member the leader gave nothing.
        XCTAssertEqual(try ConsumerProtocolAssignment.decode(ByteBuffer()).partitions, [])
        // The Java client writes v3 with the same layout.
        let java = int16(3) + int32(1) + string("t") + int32(1) + int32(5) + int32(0)
        XCTAssertEqual(
            try ConsumerProtocolAssignment.decode(ByteBuffer(bytes: java)).partitions,
            [TopicPartition(topic: "t", partition: 5)])
    }

    /// Every prefix of a subscription and an assignment is refused with an error, never a trap;
    /// so are a negative version and an absurd array count.
    func testTruncatedAndBrokenBytesAreRefused() {
        let subscription = bytes(
            ConsumerProtocolSubscription(
                version: 3, topics: ["a"], ownedPartitions: [TopicPartition(topic: "a", partition: 1)],
                generationId: 2, rackId: "r"
            ).encoded())
        for length in 0..<subscription.count {
            XCTAssertThrowsError(try ConsumerProtocolSubscription.decode(ByteBuffer(bytes: subscription[0..<length])))
        }
        let assignment = bytes(
            ConsumerProtocolAssignment(partitions: [TopicPartition(topic: "a", partition: 1)]).encoded())
        for length in 1..<assignment.count {
            XCTAssertThrowsError(try ConsumerProtocolAssignment.decode(ByteBuffer(bytes: assignment[0..<length])))
        }
        XCTAssertThrowsError(
            try ConsumerProtocolSubscription.decode(ByteBuffer(bytes: int16(-1) + int32(0) + int32(0))))
        XCTAssertThrowsError(try ConsumerProtocolAssignment.decode(ByteBuffer(bytes: int16(0) + int32(Int32.max))))
    }
}

/// The assignors give what Apache Kafka's `RangeAssignor` and `RoundRobinAssignor` give (the
/// expected values are the examples of their Javadoc and cases of their tests).
final class AssignorTests: XCTestCase {
    private func tp(_ topic: String, _ partition: Int32) -> TopicPartition {
        TopicPartition(topic: topic, partition: partition)
    }

    /// RangeAssignor's Javadoc: C0 and C1 on t0 and t1 with 3 partitions each.
    func testRangeJavadocExample() {
        let members = [
            AssignorMember(memberId: "C1", topics: ["t0", "t1"]), AssignorMember(memberId: "C0", topics: ["t0", "t1"]),
        ]
        let result = PartitionAssignor.range.assign(members: members, partitionCounts: ["t0": 3, "t1": 3])
        XCTAssertEqual(result["C0"], [tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)])
        XCTAssertEqual(result["C1"], [tp("t0", 2), tp("t1", 2)])
    }

    /// RoundRobinAssignor's Javadoc: the same group dealt in turn.
    func testRoundRobinJavadocExample() {
        let members = [
            AssignorMember(memberId: "C0", topics: ["t0", "t1"]), AssignorMember(memberId: "C1", topics: ["t1", "t0"]),
        ]
        let result = PartitionAssignor.roundRobin.assign(members: members, partitionCounts: ["t0": 3, "t1": 3])
        XCTAssertEqual(result["C0"], [tp("t0", 0), tp("t0", 2), tp("t1", 1)])
        XCTAssertEqual(result["C1"], [tp("t0", 1), tp("t1", 0), tp("t1", 2)])
    }

    /// RoundRobinAssignor's Javadoc with unequal subscriptions: a member not subscribed to a
    /// partition's topic is skipped.
    func testRoundRobinSkipsMembersNotSubscribed() {
        let members = [
            AssignorMember(memberId: "C0", topics: ["t0"]), AssignorMember(memberId: "C1", topics: ["t0", "t1"]),
            AssignorMember(memberId: "C2", topics: ["t0", "t1", "t2"]),
        ]
        let result = PartitionAssignor.roundRobin.assign(
            members: members, partitionCounts: ["t0": 1, "t1": 2, "t2": 3])
        XCTAssertEqual(result["C0"], [tp("t0", 0)])
        XCTAssertEqual(result["C1"], [tp("t1", 0)])
        XCTAssertEqual(result["C2"], [tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)])
    }

    /// testMultipleConsumersMixedTopics of Kafka's RangeAssignorTest and RoundRobinAssignorTest.
    func testMultipleConsumersMixedTopics() {
        let members = [
            AssignorMember(memberId: "consumer1", topics: ["topic1"]),
            AssignorMember(memberId: "consumer2", topics: ["topic1", "topic2"]),
            AssignorMember(memberId: "consumer3", topics: ["topic1"]),
        ]
        for assignor in PartitionAssignor.allCases {
            let result = assignor.assign(members: members, partitionCounts: ["topic1": 3, "topic2": 2])
            XCTAssertEqual(result["consumer1"], [tp("topic1", 0)], "\(assignor)")
            XCTAssertEqual(result["consumer2"], [tp("topic1", 1), tp("topic2", 0), tp("topic2", 1)], "\(assignor)")
            XCTAssertEqual(result["consumer3"], [tp("topic1", 2)], "\(assignor)")
        }
    }

    /// Static members sort first by instance id (KIP-345), so a static member keeps its range
    /// whatever member id it gets on restart; dynamic members follow by member id.
    func testStaticMembersSortByInstanceIdFirst() {
        let members = [
            AssignorMember(memberId: "a-dynamic", topics: ["t"]),
            AssignorMember(memberId: "z-restarted", groupInstanceId: "instance-2", topics: ["t"]),
            AssignorMember(memberId: "y-restarted", groupInstanceId: "instance-1", topics: ["t"]),
        ]
        let result = PartitionAssignor.range.assign(members: members, partitionCounts: ["t": 4])
        XCTAssertEqual(result["y-restarted"], [tp("t", 0), tp("t", 1)])
        XCTAssertEqual(result["z-restarted"], [tp("t", 2)])
        XCTAssertEqual(result["a-dynamic"], [tp("t", 3)])
    }

    /// A topic that does not exist yet, or that nobody subscribes to, assigns nothing; every
    /// member is in the answer, with nothing if need be; more members than partitions leaves some idle.
    func testMissingTopicsAndIdleMembers() {
        let members = [
            AssignorMember(memberId: "m1", topics: ["absent", "t"]), AssignorMember(memberId: "m2", topics: ["t"]),
            AssignorMember(memberId: "m3", topics: ["t"]),
        ]
        for assignor in PartitionAssignor.allCases {
            let result = assignor.assign(members: members, partitionCounts: ["t": 2, "other": 5])
            XCTAssertEqual(result.count, 3)
            XCTAssertEqual(result["m1"], [tp("t", 0)], "\(assignor)")
            XCTAssertEqual(result["m2"], [tp("t", 1)], "\(assignor)")
            XCTAssertEqual(result["m3"], [], "\(assignor)")
        }
    }

    /// For seeded random groups, both assignors give every partition of the subscribed topics to
    /// exactly one member subscribed to its topic, and (range, per topic; roundrobin, with equal
    /// subscriptions) shares that differ by at most one.
    func testSeededRandomGroupsAreCompleteAndBalanced() {
        var rng = SplitMix64(state: 0xC0FFEE)
        for round in 0..<200 {
            let topics = (0..<Int.random(in: 1...4, using: &rng)).map { "topic-\($0)" }
            var counts: [String: Int32] = [:]
            for topic in topics { counts[topic] = Int32.random(in: 1...9, using: &rng) }
            let sameSubscription = round % 2 == 0
            let members = (0..<Int.random(in: 1...6, using: &rng)).map { index in
                AssignorMember(
                    memberId: "member-\(UInt32.random(in: 0...UInt32.max, using: &rng))-\(index)",
                    groupInstanceId: Bool.random(using: &rng) ? "instance-\(index)" : nil,
                    topics: sameSubscription ? topics : topics.filter { _ in Bool.random(using: &rng) } + [topics[0]])
            }
            for assignor in PartitionAssignor.allCases {
                let result = assignor.assign(members: members, partitionCounts: counts)
                var owners: [TopicPartition: String] = [:]
                for member in members {
                    for partition in result[member.memberId] ?? [] {
                        XCTAssertNil(owners[partition], "round \(round) \(assignor): \(partition) given twice")
                        XCTAssertTrue(member.topics.contains(partition.topic))
                        owners[partition] = member.memberId
                    }
                }
                let wanted = Set(members.flatMap(\.topics))
                XCTAssertEqual(
                    owners.count, wanted.reduce(0) { $0 + Int(counts[$1] ?? 0) }, "round \(round) \(assignor)")
                if assignor == .range || sameSubscription {
                    for topic in wanted where assignor == .range {
                        let shares = members.filter { $0.topics.contains(topic) }.map { member in
                            (result[member.memberId] ?? []).filter { $0.topic == topic }.count
                        }
                        XCTAssertLessThanOrEqual((shares.max() ?? 0) - (shares.min() ?? 0), 1)
                    }
                    if assignor == .roundRobin {
                        let shares = members.map { (result[$0.memberId] ?? []).count }
                        XCTAssertLessThanOrEqual((shares.max() ?? 0) - (shares.min() ?? 0), 1)
                    }
                }
            }
        }
    }
}

/// What the consumer does about each coordinator error, and its settings.
final class GroupMembershipTests: XCTestCase {
    /// The error table of Kafka's AbstractCoordinator and librdkafka's cgrp.
    func testErrorActions() {
        let cases: [(KeelClientError, GroupErrorAction)] = [
            (.broker(.rebalanceInProgress, context: ""), .rejoin),
            (.broker(.illegalGeneration, context: ""), .resetGenerationAndRejoin),
            (.broker(.unknownMemberId, context: ""), .resetMemberAndRejoin),
            (.broker(.notCoordinator, context: ""), .rediscoverCoordinator),
            (.broker(.coordinatorNotAvailable, context: ""), .rediscoverCoordinator),
            (.broker(.coordinatorLoadInProgress, context: ""), .retryLater),
            (.connectionClosed(address: "x"), .rediscoverCoordinator),
            (.connectFailed(address: "x", reason: "refused"), .rediscoverCoordinator),
            (.requestTimedOut(api: .heartbeat, timeoutMs: 1), .rediscoverCoordinator),
            (.broker(.fencedInstanceId, context: ""), .fatal),
            (.broker(.invalidSessionTimeout, context: ""), .fatal),
            (.broker(.inconsistentGroupProtocol, context: ""), .fatal),
            (.broker(.groupMaxSizeReached, context: ""), .fatal),
            (.broker(.unknownServerError, context: ""), .fatal),
            (.protocolViolation("garbage"), .fatal),
        ]
        for (error, action) in cases {
            XCTAssertEqual(GroupErrorAction.classify(error), action, "\(error)")
        }
        // SyncGroup: an unknown refusal is retried with a new join; configuration errors stay fatal.
        XCTAssertEqual(GroupErrorAction.classify(.broker(.invalidRequest, context: ""), in: .syncGroup), .retryLater)
        XCTAssertEqual(GroupErrorAction.classify(.broker(.fencedInstanceId, context: ""), in: .syncGroup), .fatal)
        XCTAssertEqual(GroupErrorAction.classify(.broker(.invalidRequest, context: ""), in: .joinGroup), .fatal)
        XCTAssertEqual(
            GroupErrorAction.classify(.broker(.rebalanceInProgress, context: ""), in: .syncGroup), .rejoin)
        XCTAssertEqual(
            [100, 200, 400, 800, 1000, 1000], (1...6).map { groupBackoffMs(attempt: $0, baseMs: 100, maxMs: 1000) })
    }

    /// The defaults are the Java consumer's; settings out of range are refused with a sentence.
    func testConfigurationDefaultsAndValidation() throws {
        let defaults = ConsumerConfiguration(groupId: "g")
        XCTAssertEqual(defaults.sessionTimeoutMs, 45_000)
        XCTAssertEqual(defaults.rebalanceTimeoutMs, 300_000)
        XCTAssertEqual(defaults.heartbeatIntervalMs, 3_000)
        XCTAssertEqual(defaults.autoOffsetReset, .latest)
        XCTAssertTrue(defaults.enableAutoCommit)
        XCTAssertEqual(defaults.autoCommitIntervalMs, 5_000)
        XCTAssertEqual(defaults.assignors, [.range, .roundRobin])
        XCTAssertNil(defaults.groupInstanceId)
        try defaults.validate()
        var broken = defaults
        broken.heartbeatIntervalMs = 45_000
        XCTAssertThrowsError(try broken.validate())
        broken = defaults
        broken.groupId = ""
        XCTAssertThrowsError(try broken.validate())
        broken = defaults
        broken.assignors = [.range, .range]
        XCTAssertThrowsError(try broken.validate())
        broken = defaults
        broken.groupInstanceId = ""
        XCTAssertThrowsError(try broken.validate())
    }
}

/// SplitMix64: a seeded generator, so that a failing random case replays.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
