import ConsumerGroups
import KafkaProtocol
import NIOCore
import XCTest

/// A small deterministic generator (SplitMix64), so that every randomized test is a seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func bytes(_ buffer: ByteBuffer?) -> [UInt8] {
    buffer.map { Array($0.readableBytesView) } ?? []
}

func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    ByteBuffer(bytes: bytes)
}

final class GroupRecordTests: XCTestCase {
    static let metadata = StoredGroupMetadata(
        protocolType: "consumer",
        generation: 7,
        protocolName: "range",
        leader: "c1-1",
        currentStateTimestampMs: 1_700_000_000_000,
        members: [
            StoredMember(
                memberId: "c1-1",
                groupInstanceId: "i1",
                clientId: "c1",
                clientHost: "/10.0.0.1",
                rebalanceTimeoutMs: 300_000,
                sessionTimeoutMs: 45_000,
                subscription: ByteBuffer(string: "sub"),
                assignment: ByteBuffer(string: "assign")
            ),
            StoredMember(
                memberId: "c2-2",
                groupInstanceId: nil,
                clientId: "c2",
                clientHost: "/10.0.0.2",
                rebalanceTimeoutMs: 10_000,
                sessionTimeoutMs: 10_000,
                subscription: ByteBuffer(),
                assignment: ByteBuffer()
            ),
        ]
    )

    static let samples: [GroupRecordContent] = [
        .offsetCommit(
            group: "g",
            TopicPartition(topic: "t", partition: 0),
            CommittedOffset(offset: 5, metadata: "", commitTimestampMs: 1000)
        ),
        .offsetCommit(
            group: "grüppe",
            TopicPartition(topic: "orders", partition: 15),
            CommittedOffset(offset: Int64.max, leaderEpoch: 3, metadata: "meta", commitTimestampMs: -1)
        ),
        .offsetCommit(group: "g", TopicPartition(topic: "t", partition: 1), nil),
        .groupMetadata(group: "g", metadata),
        .groupMetadata(
            group: "empty",
            StoredGroupMetadata(
                protocolType: "consumer",
                generation: 3,
                protocolName: nil,
                leader: nil,
                currentStateTimestampMs: 42,
                members: []
            )
        ),
        .groupMetadata(group: "g", nil),
    ]

    /// Every kind of record decodes to exactly what was encoded.
    func testRecordsRoundTrip() throws {
        for content in Self.samples {
            XCTAssertEqual(try GroupRecord(content).decode(), content)
        }
    }

    /// The offset commit layout is Kafka's: key version 1 (group, topic, partition), value version 3.
    func testOffsetCommitBytesFollowKafkasLayout() {
        let record = GroupRecord(Self.samples[0])
        XCTAssertEqual(bytes(record.key), [0, 1, 0, 1, 0x67, 0, 1, 0x74, 0, 0, 0, 0])
        XCTAssertEqual(
            bytes(record.value),
            [0, 3, 0, 0, 0, 0, 0, 0, 0, 5, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 0x03, 0xE8]
        )
        let tombstone = GroupRecord(.groupMetadata(group: "g", nil))
        XCTAssertEqual(bytes(tombstone.key), [0, 2, 0, 1, 0x67])
        XCTAssertNil(tombstone.value)
    }

    /// The group metadata layout is Kafka's value version 3, field by field.
    func testGroupMetadataBytesFollowKafkasLayout() {
        let member = StoredMember(
            memberId: "m",
            groupInstanceId: nil,
            clientId: "c",
            clientHost: "h",
            rebalanceTimeoutMs: 1000,
            sessionTimeoutMs: 6000,
            subscription: buffer([1]),
            assignment: buffer([2])
        )
        let metadata = StoredGroupMetadata(
            protocolType: "consumer",
            generation: 1,
            protocolName: "range",
            leader: "m",
            currentStateTimestampMs: 0,
            members: [member]
        )
        let record = GroupRecord(.groupMetadata(group: "g", metadata))
        let expected: [UInt8] =
            [0, 3]  // value version
            + [0, 8] + Array("consumer".utf8)  // protocol_type
            + [0, 0, 0, 1]  // generation
            + [0, 5] + Array("range".utf8)  // protocol
            + [0, 1] + Array("m".utf8)  // leader
            + [0, 0, 0, 0, 0, 0, 0, 0]  // current_state_timestamp
            + [0, 0, 0, 1]  // members: 1
            + [0, 1] + Array("m".utf8)  // member_id
            + [0xFF, 0xFF]  // group_instance_id: null
            + [0, 1] + Array("c".utf8)  // client_id
            + [0, 1] + Array("h".utf8)  // client_host
            + [0, 0, 0x03, 0xE8]  // rebalance_timeout
            + [0, 0, 0x17, 0x70]  // session_timeout
            + [0, 0, 0, 1, 1]  // subscription
            + [0, 0, 0, 1, 2]  // assignment
        XCTAssertEqual(bytes(record.value), expected)
    }

    /// A coordinator refuses to finish a load from a log holding a record that is not a group record.
    func testLoadThrowsOnGarbageAndStaysLoading() {
        var coordinator = GroupCoordinator(loading: true)
        let garbage = GroupRecord(key: buffer([0, 7, 1]), value: buffer([1, 2, 3]))
        XCTAssertThrowsError(try coordinator.load([GroupRecord(Self.samples[0]), garbage])) { error in
            XCTAssertEqual(error as? GroupRecordError, .unknownKeyVersion(7))
        }
        XCTAssertTrue(coordinator.isLoading)
    }

    /// Values written by older Kafka versions (offset v0/v1, group metadata v0) still decode.
    func testOlderValueVersionsDecode() throws {
        let key = GroupRecord(Self.samples[0]).key
        // Offset value v1: offset, metadata, commit timestamp, expire timestamp.
        var v1 = KafkaWriter()
        v1.writeInt16(1)
        v1.writeInt64(9)
        v1.writeString("m")
        v1.writeInt64(100)
        v1.writeInt64(200)
        XCTAssertEqual(
            try GroupRecord(key: key, value: v1.buffer).decode(),
            .offsetCommit(
                group: "g",
                TopicPartition(topic: "t", partition: 0),
                CommittedOffset(offset: 9, metadata: "m", commitTimestampMs: 100)
            )
        )
        // Group metadata value v0: no rebalance timeout, no state timestamp, no instance id.
        var v0 = KafkaWriter()
        v0.writeInt16(0)
        v0.writeString("consumer")
        v0.writeInt32(2)
        v0.writeNullableString("range")
        v0.writeNullableString("m-1")
        v0.writeInt32(1)
        v0.writeString("m-1")
        v0.writeString("client")
        v0.writeString("/host")
        v0.writeInt32(30_000)
        v0.writeBytes(ByteBuffer(string: "s"))
        v0.writeBytes(ByteBuffer(string: "a"))
        let groupKey = GroupRecord(.groupMetadata(group: "g", nil)).key
        guard case .groupMetadata(_, let metadata?) = try GroupRecord(key: groupKey, value: v0.buffer).decode() else {
            return XCTFail("expected group metadata")
        }
        XCTAssertEqual(metadata.generation, 2)
        XCTAssertEqual(metadata.currentStateTimestampMs, -1)
        XCTAssertEqual(metadata.members.first?.sessionTimeoutMs, 30_000)
        XCTAssertEqual(metadata.members.first?.rebalanceTimeoutMs, 30_000)
        XCTAssertNil(metadata.members.first?.groupInstanceId)
    }

    /// Every strict prefix of a valid key or value, fed one byte longer each time, is refused with an error,
    /// and so are trailing bytes and unknown versions.
    func testTruncatedAndOverlongRecordsThrow() {
        for content in Self.samples {
            let record = GroupRecord(content)
            let key = bytes(record.key)
            for length in 0..<key.count {
                XCTAssertThrowsError(try GroupRecord(key: buffer(Array(key[..<length])), value: record.value).decode())
            }
            XCTAssertThrowsError(try GroupRecord(key: buffer(key + [0]), value: record.value).decode())
            guard let value = record.value.map({ bytes($0) }) else { continue }
            for length in 0..<value.count {
                XCTAssertThrowsError(try GroupRecord(key: record.key, value: buffer(Array(value[..<length]))).decode())
            }
            XCTAssertThrowsError(try GroupRecord(key: record.key, value: buffer(value + [0])).decode())
        }
        XCTAssertThrowsError(try GroupRecord(key: buffer([0, 3, 0, 0]), value: nil).decode()) { error in
            XCTAssertEqual(error as? GroupRecordError, .unknownKeyVersion(3))
        }
        let key = GroupRecord(Self.samples[0]).key
        XCTAssertThrowsError(try GroupRecord(key: key, value: buffer([0, 9])).decode()) { error in
            XCTAssertEqual(error as? GroupRecordError, .unknownValueVersion(9))
        }
    }

    /// Random and mutated bytes never crash the decoder (bounded; the seed is printed).
    func testGarbageNeverCrashesTheDecoder() {
        let seed = UInt64(0x6B65_656C)
        print("GroupRecordTests.testGarbageNeverCrashesTheDecoder seed=\(seed)")
        var random = SeededGenerator(seed: seed)
        let valid = Self.samples.map { GroupRecord($0) }
        var decoded = 0
        for _ in 0..<5000 {
            let base = valid[Int.random(in: 0..<valid.count, using: &random)]
            var key = bytes(base.key)
            var value = bytes(base.value)
            switch Int.random(in: 0..<3, using: &random) {
            case 0:
                // Flip a few bytes of a valid record.
                for _ in 0..<Int.random(in: 1...4, using: &random) {
                    if !value.isEmpty && Bool.random(using: &random) {
                        value[Int.random(in: 0..<value.count, using: &random)] = UInt8.random(
                            in: 0...255, using: &random)
                    } else {
                        key[Int.random(in: 0..<key.count, using: &random)] = UInt8.random(in: 0...255, using: &random)
                    }
                }
            case 1:
                // A valid version prefix followed by noise.
                key =
                    [0, UInt8.random(in: 0...2, using: &random)]
                    + (0..<Int.random(in: 0..<24, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random)
                    }
                value =
                    [0, UInt8.random(in: 0...3, using: &random)]
                    + (0..<Int.random(in: 0..<64, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random)
                    }
            default:
                // Pure noise.
                key = (0..<Int.random(in: 0..<16, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random)
                }
                value = (0..<Int.random(in: 0..<64, using: &random)).map { _ in
                    UInt8.random(in: 0...255, using: &random)
                }
            }
            if (try? GroupRecord(key: buffer(key), value: buffer(value)).decode()) != nil { decoded += 1 }
        }
        // Some flipped bytes land in offsets or timestamps and still decode; most garbage does not.
        XCTAssertLessThan(decoded, 5000, "seed=\(seed)")
    }

    /// Groups land on the `__consumer_offsets` partition Kafka would choose (Java's String.hashCode, Utils.abs).
    func testGroupPartitionMatchesKafka() {
        // Expected values computed with Java's algorithm: "my-group".hashCode() == -1906497762.
        XCTAssertEqual(GroupCoordinator.partition(for: "", partitionCount: 16), 0)
        XCTAssertEqual(GroupCoordinator.partition(for: "a", partitionCount: 50), 47)
        XCTAssertEqual(GroupCoordinator.partition(for: "my-group", partitionCount: 50), 12)
        XCTAssertEqual(GroupCoordinator.partition(for: "my-group", partitionCount: 16), 2)
        XCTAssertEqual(GroupCoordinator.partition(for: "console-consumer-1", partitionCount: 50), 24)
        // "polygenelubricants".hashCode() == Int32.min, which Kafka's Utils.abs maps to 0.
        XCTAssertEqual(GroupCoordinator.partition(for: "polygenelubricants", partitionCount: 16), 0)
    }

    /// When an append fails, every reply waiting for it turns into the same API's error response.
    func testRepliesOnFailureCarryTheError() {
        var coordinator = GroupCoordinator()
        let request = OffsetCommitRequest(
            groupId: "g",
            generationId: -1,
            memberId: "",
            retentionTimeMs: -1,
            topics: [
                .init(name: "t", partitions: [.init(partitionIndex: 0, committedOffset: 1, committedMetadata: nil)])
            ]
        )
        let effects = coordinator.offsetCommit(RequestToken(1), request, now: 0)
        XCTAssertEqual(effects.replies, [])
        XCTAssertEqual(effects.appends.count, 1)
        let failed = effects.appends.first?.repliesOnFailure(.notCoordinator) ?? []
        XCTAssertEqual(failed.map(\.token), [RequestToken(1)])
        guard case .offsetCommit(let response)? = failed.first?.response else {
            return XCTFail("expected a commit reply")
        }
        XCTAssertEqual(response.topics.first?.partitions.first?.errorCode, .notCoordinator)
        XCTAssertEqual(
            GroupResponse.join(
                JoinGroupResponse(generationId: 1, protocolName: "r", leader: "m", memberId: "m", members: [])
            )
            .failed(with: .notCoordinator),
            .join(
                JoinGroupResponse(
                    errorCode: .notCoordinator, generationId: -1, protocolName: "", leader: "",
                    memberId: "m", members: []))
        )
    }
}
