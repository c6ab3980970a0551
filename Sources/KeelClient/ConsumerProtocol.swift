// The "consumer" embedded protocol: the opaque bytes a consumer puts in JoinGroup's protocol
// metadata (its subscription) and the leader puts in SyncGroup's assignments. The broker never
// reads them; every member of a group must, so the layouts are Kafka's exactly
// (apache/kafka `ConsumerProtocolSubscription.json`, `ConsumerProtocolAssignment.json`; librdkafka
// `rd_kafka_consumer_protocol_member_metadata_new`, `rd_kafka_group_MemberState_consumer_write`).

import KafkaProtocol
import NIOCore

/// A member's subscription, as carried in JoinGroup's protocol metadata.
///
/// Layout (big-endian, non-flexible Kafka encodings):
///
/// | field | type | versions |
/// | --- | --- | --- |
/// | version | int16 | header of every version |
/// | topics | array[string] (int32 count) | 0+ |
/// | user_data | nullable bytes (int32 length, -1 = null) | 0+ |
/// | owned_partitions | array[{topic string, partitions array[int32]}] | 1+ |
/// | generation_id | int32 (-1 = none) | 2+ |
/// | rack_id | nullable string (int16 length, -1 = null) | 3+ |
///
/// Java writes v3 since Kafka 3.5 and librdkafka ≥ 2.3 writes v3; both read any version and
/// ignore fields a newer version appends, which is what `decode` does too.
public struct ConsumerProtocolSubscription: Sendable, Equatable {
    /// The version the bytes were (or will be) written with.
    public var version: Int16
    /// The subscribed topics.
    public var topics: [String]
    /// The assignor's user data; nil is Kafka's null.
    public var userData: ByteBuffer?
    /// The partitions the member owns (v1+), used by sticky and cooperative assignors.
    public var ownedPartitions: [TopicPartition]
    /// The generation the owned partitions belong to (v2+), -1 if none.
    public var generationId: Int32
    /// The member's rack (v3+), nil if none.
    public var rackId: String?

    /// Creates a subscription.
    public init(
        version: Int16 = 1,
        topics: [String],
        userData: ByteBuffer? = ByteBuffer(),
        ownedPartitions: [TopicPartition] = [],
        generationId: Int32 = -1,
        rackId: String? = nil
    ) {
        self.version = version
        self.topics = topics
        self.userData = userData
        self.ownedPartitions = ownedPartitions
        self.generationId = generationId
        self.rackId = rackId
    }

    /// The bytes at `version` (0 to 3); fields newer than the version are left out.
    ///
    /// KeelClient sends v1 with empty (not null) user data, as librdkafka does: every Kafka client
    /// since 0.9 reads it.
    public func encoded() -> ByteBuffer {
        precondition((0...3).contains(version), "ConsumerProtocolSubscription v\(version) is not defined")
        var writer = KafkaWriter(capacity: 64)
        writer.writeInt16(version)
        writer.writeStringArray(topics)
        writer.writeNullableBytes(userData)
        if version >= 1 { ConsumerProtocolAssignment.writePartitions(ownedPartitions, to: &writer) }
        if version >= 2 { writer.writeInt32(generationId) }
        if version >= 3 { writer.writeNullableString(rackId) }
        return writer.buffer
    }

    /// Reads a subscription of any version: fields up to v3 are read, anything after them ignored.
    public static func decode(_ bytes: ByteBuffer) throws(KeelClientError) -> ConsumerProtocolSubscription {
        do throws(KafkaProtocolError) {
            var reader = KafkaReader(bytes)
            let version = try reader.readInt16()
            guard version >= 0 else { throw KafkaProtocolError.invalidLength(Int(version)) }
            let topics = try reader.readStringArray()
            let userData = try reader.readNullableBytes()
            var subscription = ConsumerProtocolSubscription(version: version, topics: topics, userData: userData)
            if version >= 1 { subscription.ownedPartitions = try ConsumerProtocolAssignment.readPartitions(&reader) }
            if version >= 2 { subscription.generationId = try reader.readInt32() }
            if version >= 3 { subscription.rackId = try reader.readNullableString() }
            return subscription
        } catch {
            throw .protocolViolation("consumer protocol subscription: \(error)")
        }
    }
}

/// A member's assignment, as carried in SyncGroup.
///
/// Layout: `version int16, assigned_partitions array[{topic string, partitions array[int32]}],
/// user_data nullable bytes`. Versions 0 to 3 share this layout (v1–v3 only promise that the
/// reader understands cooperative rebalancing); KeelClient writes v0 as librdkafka does. Zero
/// bytes (what a broker returns to a member the leader gave nothing) is the empty assignment.
public struct ConsumerProtocolAssignment: Sendable, Equatable {
    /// The version the bytes were (or will be) written with.
    public var version: Int16
    /// The assigned partitions.
    public var partitions: [TopicPartition]
    /// The assignor's user data; nil is Kafka's null.
    public var userData: ByteBuffer?

    /// Creates an assignment.
    public init(version: Int16 = 0, partitions: [TopicPartition], userData: ByteBuffer? = nil) {
        self.version = version
        self.partitions = partitions
        self.userData = userData
    }

    /// The bytes: topics in name order, partitions ascending within each.
    public func encoded() -> ByteBuffer {
        var writer = KafkaWriter(capacity: 64)
        writer.writeInt16(version)
        Self.writePartitions(partitions, to: &writer)
        writer.writeNullableBytes(userData)
        return writer.buffer
    }

    /// Reads an assignment of any version; zero bytes are the empty assignment.
    public static func decode(_ bytes: ByteBuffer) throws(KeelClientError) -> ConsumerProtocolAssignment {
        if bytes.readableBytes == 0 { return ConsumerProtocolAssignment(partitions: []) }
        do throws(KafkaProtocolError) {
            var reader = KafkaReader(bytes)
            let version = try reader.readInt16()
            guard version >= 0 else { throw KafkaProtocolError.invalidLength(Int(version)) }
            let partitions = try readPartitions(&reader)
            let userData = try reader.readNullableBytes()
            return ConsumerProtocolAssignment(version: version, partitions: partitions, userData: userData)
        } catch {
            throw .protocolViolation("consumer protocol assignment: \(error)")
        }
    }

    /// `array[{topic string, partitions array[int32]}]`, grouped by topic in name order.
    static func writePartitions(_ partitions: [TopicPartition], to writer: inout KafkaWriter) {
        var byTopic: [String: [Int32]] = [:]
        for entry in partitions { byTopic[entry.topic, default: []].append(entry.partition) }
        let topics = byTopic.keys.sorted(by: javaStringOrder)
        writer.writeArray(topics) { writer, topic in
            writer.writeString(topic)
            writer.writeInt32Array(byTopic[topic, default: []].sorted())
        }
    }

    /// Reads `array[{topic string, partitions array[int32]}]` into a flat list.
    static func readPartitions(_ reader: inout KafkaReader) throws(KafkaProtocolError) -> [TopicPartition] {
        let groups = try reader.readArray(minElementBytes: 6) {
            (reader: inout KafkaReader) throws(KafkaProtocolError) -> (String, [Int32]) in
            (try reader.readString(), try reader.readInt32Array())
        }
        var result: [TopicPartition] = []
        for (topic, partitions) in groups {
            for partition in partitions { result.append(TopicPartition(topic: topic, partition: partition)) }
        }
        return result
    }
}

/// Java's `String.compareTo`: UTF-16 code units, lexicographically. Kafka's assignors sort topics
/// and member ids this way; for ASCII names it is the same as Swift's `<`.
func javaStringOrder(_ a: String, _ b: String) -> Bool {
    a.utf16.lexicographicallyPrecedes(b.utf16)
}
