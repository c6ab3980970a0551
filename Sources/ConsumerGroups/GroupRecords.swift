import KafkaProtocol
import NIOCore

/// Why a `__consumer_offsets` record could not be decoded. Thrown, never trapped on.
public enum GroupRecordError: Error, Equatable, Sendable {
    /// The bytes ended early or carried an impossible length.
    case malformed(KafkaProtocolError)
    /// The key announced a version this coordinator does not know.
    case unknownKeyVersion(Int16)
    /// The value announced a version this coordinator does not know for its key.
    case unknownValueVersion(Int16)
    /// A partition index was negative.
    case negativePartition(Int32)
}

/// A topic and a partition index: the unit of a committed offset.
public struct TopicPartition: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The topic name.
    public var topic: String
    /// The partition index.
    public var partition: Int32

    /// Creates a value with every field given.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// Orders by topic, then partition.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    /// `topic-partition`, as Kafka prints it.
    public var description: String { "\(topic)-\(partition)" }
}

/// A committed offset as stored (Kafka's `OffsetCommitValue`).
public struct CommittedOffset: Equatable, Sendable {
    /// The next offset the group will consume.
    public var offset: Int64
    /// The leader epoch the client saw (-1 = unknown; OffsetCommit v3 does not carry it).
    public var leaderEpoch: Int32
    /// The client's metadata string ("" = none).
    public var metadata: String
    /// When the coordinator accepted the commit, in milliseconds of the host's clock.
    public var commitTimestampMs: Int64

    /// Creates a value with every field given.
    public init(offset: Int64, leaderEpoch: Int32 = -1, metadata: String, commitTimestampMs: Int64) {
        self.offset = offset
        self.leaderEpoch = leaderEpoch
        self.metadata = metadata
        self.commitTimestampMs = commitTimestampMs
    }
}

/// A member as stored in a group metadata record (Kafka's `GroupMetadataValue.MemberMetadata`).
public struct StoredMember: Equatable, Sendable {
    /// The member id.
    public var memberId: String
    /// The static instance id, or nil for a dynamic member.
    public var groupInstanceId: String?
    /// The client id from the request header.
    public var clientId: String
    /// The client's address.
    public var clientHost: String
    /// The member's rebalance timeout, in milliseconds.
    public var rebalanceTimeoutMs: Int32
    /// The member's session timeout, in milliseconds.
    public var sessionTimeoutMs: Int32
    /// The member's metadata for the chosen protocol (opaque).
    public var subscription: ByteBuffer
    /// The member's assignment from the leader (opaque).
    public var assignment: ByteBuffer

    /// Creates a value with every field given.
    public init(
        memberId: String,
        groupInstanceId: String?,
        clientId: String,
        clientHost: String,
        rebalanceTimeoutMs: Int32,
        sessionTimeoutMs: Int32,
        subscription: ByteBuffer,
        assignment: ByteBuffer
    ) {
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.clientId = clientId
        self.clientHost = clientHost
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.sessionTimeoutMs = sessionTimeoutMs
        self.subscription = subscription
        self.assignment = assignment
    }
}

/// A group's metadata as stored (Kafka's `GroupMetadataValue`): written when a generation's assignment is
/// settled, when a group becomes Empty, and when a static member is replaced.
public struct StoredGroupMetadata: Equatable, Sendable {
    /// The protocol type ("consumer"), "" when the group never had one.
    public var protocolType: String
    /// The generation.
    public var generation: Int32
    /// The chosen protocol, or nil when the group is Empty.
    public var protocolName: String?
    /// The leader's member id, or nil when the group is Empty.
    public var leader: String?
    /// When the group entered its current state, in milliseconds (-1 = unknown; value versions 0 and 1).
    public var currentStateTimestampMs: Int64
    /// The members; empty for an Empty group.
    public var members: [StoredMember]

    /// Creates a value with every field given.
    public init(
        protocolType: String,
        generation: Int32,
        protocolName: String?,
        leader: String?,
        currentStateTimestampMs: Int64,
        members: [StoredMember]
    ) {
        self.protocolType = protocolType
        self.generation = generation
        self.protocolName = protocolName
        self.leader = leader
        self.currentStateTimestampMs = currentStateTimestampMs
        self.members = members
    }
}

/// What one `__consumer_offsets` record says. A nil value is a tombstone (compaction drops the key).
public enum GroupRecordContent: Equatable, Sendable {
    /// An offset commit (key versions 0 and 1), or its tombstone.
    case offsetCommit(group: String, TopicPartition, CommittedOffset?)
    /// A group's metadata (key version 2), or its tombstone (the group was deleted).
    case groupMetadata(group: String, StoredGroupMetadata?)
}

/// One record for a group's `__consumer_offsets` partition: key and value bytes in Kafka's own layout, so that
/// Kafka tools reading the topic understand it. The host wraps records in a batch and appends them.
///
/// Layout (big-endian; `string` = int16 length + UTF-8, `string?` = length -1 for null, `bytes` = int32 length,
/// `array` = int32 count):
///
/// Keys — `int16 version` then:
/// - 0, 1 (offset commit): `group string, topic string, partition int32`; Keel writes version 1.
/// - 2 (group metadata): `group string`.
///
/// Offset commit values — `int16 version` then (Keel writes 3, reads 0–3):
/// - 0, 2: `offset int64, metadata string, commit_timestamp int64`
/// - 1: `offset int64, metadata string, commit_timestamp int64, expire_timestamp int64` (ignored)
/// - 3: `offset int64, leader_epoch int32, metadata string, commit_timestamp int64`
///
/// Group metadata values — `int16 version`, `protocol_type string, generation int32, protocol string?,
/// leader string?`, then `current_state_timestamp int64` (versions 2, 3), then `members array` of
/// `member_id string, group_instance_id string? (v3), client_id string, client_host string,
/// rebalance_timeout int32 (v1+), session_timeout int32, subscription bytes, assignment bytes`.
/// Keel writes 3, reads 0–3. A null value (tombstone) has no bytes at all.
///
/// Decoding requires the value to use up its bytes exactly and never trusts a length or count beyond what is
/// present (`KafkaReader`'s bounds checks).
public struct GroupRecord: Equatable, Sendable {
    /// The key bytes.
    public var key: ByteBuffer
    /// The value bytes, or nil for a tombstone.
    public var value: ByteBuffer?

    /// Wraps raw key and value bytes (as read from the log).
    public init(key: ByteBuffer, value: ByteBuffer?) {
        self.key = key
        self.value = value
    }

    /// Encodes `content` in the layout above.
    public init(_ content: GroupRecordContent) {
        var keyWriter = KafkaWriter(capacity: 64)
        switch content {
        case .offsetCommit(let group, let topicPartition, let committed):
            keyWriter.writeInt16(1)
            keyWriter.writeString(group)
            keyWriter.writeString(topicPartition.topic)
            keyWriter.writeInt32(topicPartition.partition)
            self.key = keyWriter.buffer
            guard let committed else {
                self.value = nil
                return
            }
            var writer = KafkaWriter(capacity: 32 + committed.metadata.utf8.count)
            writer.writeInt16(3)
            writer.writeInt64(committed.offset)
            writer.writeInt32(committed.leaderEpoch)
            writer.writeString(committed.metadata)
            writer.writeInt64(committed.commitTimestampMs)
            self.value = writer.buffer
        case .groupMetadata(let group, let metadata):
            keyWriter.writeInt16(2)
            keyWriter.writeString(group)
            self.key = keyWriter.buffer
            guard let metadata else {
                self.value = nil
                return
            }
            var writer = KafkaWriter(capacity: 128)
            writer.writeInt16(3)
            writer.writeString(metadata.protocolType)
            writer.writeInt32(metadata.generation)
            writer.writeNullableString(metadata.protocolName)
            writer.writeNullableString(metadata.leader)
            writer.writeInt64(metadata.currentStateTimestampMs)
            writer.writeArray(metadata.members) { writer, member in
                writer.writeString(member.memberId)
                writer.writeNullableString(member.groupInstanceId)
                writer.writeString(member.clientId)
                writer.writeString(member.clientHost)
                writer.writeInt32(member.rebalanceTimeoutMs)
                writer.writeInt32(member.sessionTimeoutMs)
                writer.writeBytes(member.subscription)
                writer.writeBytes(member.assignment)
            }
            self.value = writer.buffer
        }
    }

    /// Decodes the record; throws on any key or value that is not one of the layouts above.
    public func decode() throws(GroupRecordError) -> GroupRecordContent {
        do {
            var reader = KafkaReader(key)
            let keyVersion = try reader.readInt16()
            switch keyVersion {
            case 0, 1:
                let group = try reader.readString()
                let topic = try reader.readString()
                let partition = try reader.readInt32()
                try reader.expectEnd()
                guard partition >= 0 else { throw GroupRecordError.negativePartition(partition) }
                let topicPartition = TopicPartition(topic: topic, partition: partition)
                guard let value else { return .offsetCommit(group: group, topicPartition, nil) }
                return .offsetCommit(group: group, topicPartition, try Self.decodeOffset(value))
            case 2:
                let group = try reader.readString()
                try reader.expectEnd()
                guard let value else { return .groupMetadata(group: group, nil) }
                return .groupMetadata(group: group, try Self.decodeGroupMetadata(value))
            default:
                throw GroupRecordError.unknownKeyVersion(keyVersion)
            }
        } catch let error as GroupRecordError {
            throw error
        } catch let error as KafkaProtocolError {
            throw .malformed(error)
        } catch {
            throw .malformed(.invalidLength(-1))
        }
    }

    private static func decodeOffset(_ value: ByteBuffer) throws -> CommittedOffset {
        var reader = KafkaReader(value)
        let version = try reader.readInt16()
        let result: CommittedOffset
        switch version {
        case 0, 2:
            let offset = try reader.readInt64()
            let metadata = try reader.readString()
            let timestamp = try reader.readInt64()
            result = CommittedOffset(offset: offset, metadata: metadata, commitTimestampMs: timestamp)
        case 1:
            let offset = try reader.readInt64()
            let metadata = try reader.readString()
            let timestamp = try reader.readInt64()
            _ = try reader.readInt64()  // expire_timestamp: Keel expires by offsets.retention.minutes only
            result = CommittedOffset(offset: offset, metadata: metadata, commitTimestampMs: timestamp)
        case 3:
            let offset = try reader.readInt64()
            let epoch = try reader.readInt32()
            let metadata = try reader.readString()
            let timestamp = try reader.readInt64()
            result = CommittedOffset(
                offset: offset, leaderEpoch: epoch, metadata: metadata, commitTimestampMs: timestamp)
        default:
            throw GroupRecordError.unknownValueVersion(version)
        }
        try reader.expectEnd()
        return result
    }

    private static func decodeGroupMetadata(_ value: ByteBuffer) throws -> StoredGroupMetadata {
        var reader = KafkaReader(value)
        let version = try reader.readInt16()
        guard (0...3).contains(version) else { throw GroupRecordError.unknownValueVersion(version) }
        let protocolType = try reader.readString()
        let generation = try reader.readInt32()
        let protocolName = try reader.readNullableString()
        let leader = try reader.readNullableString()
        let timestamp = version >= 2 ? try reader.readInt64() : -1
        // Smallest member: v0 = 3 empty strings + int32 + 2 empty bytes = 18 bytes.
        let members = try reader.readArray(minElementBytes: 18) {
            (reader: inout KafkaReader) throws(KafkaProtocolError) in
            let memberId = try reader.readString()
            let instanceId = version >= 3 ? try reader.readNullableString() : nil
            let clientId = try reader.readString()
            let clientHost = try reader.readString()
            let sessionOrRebalance = try reader.readInt32()
            let rebalanceTimeout: Int32
            let sessionTimeout: Int32
            if version >= 1 {
                rebalanceTimeout = sessionOrRebalance
                sessionTimeout = try reader.readInt32()
            } else {
                rebalanceTimeout = sessionOrRebalance
                sessionTimeout = sessionOrRebalance
            }
            let subscription = try reader.readBytes()
            let assignment = try reader.readBytes()
            return StoredMember(
                memberId: memberId,
                groupInstanceId: instanceId,
                clientId: clientId,
                clientHost: clientHost,
                rebalanceTimeoutMs: rebalanceTimeout,
                sessionTimeoutMs: sessionTimeout,
                subscription: subscription,
                assignment: assignment
            )
        }
        try reader.expectEnd()
        return StoredGroupMetadata(
            protocolType: protocolType,
            generation: generation,
            protocolName: protocolName,
            leader: leader,
            currentStateTimestampMs: timestamp,
            members: members
        )
    }
}
