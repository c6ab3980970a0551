/// A Kafka error code (`int16` on the wire; PROTOCOL.md §7, Kafka's `Errors.java`).
///
/// A struct rather than an enum so that any code a peer sends decodes; the named constants
/// are the ones Keel uses.
public struct ErrorCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The wire value.
    public var rawValue: Int16

    /// Wraps a wire value.
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// Wraps a wire value.
    public init(_ rawValue: Int16) { self.rawValue = rawValue }

    /// -1: unexpected failure.
    public static let unknownServerError = ErrorCode(-1)
    /// 0: success.
    public static let none = ErrorCode(0)
    /// 1: fetch offset outside the log.
    public static let offsetOutOfRange = ErrorCode(1)
    /// 2: bad CRC or malformed batch.
    public static let corruptMessage = ErrorCode(2)
    /// 3: no such topic or partition.
    public static let unknownTopicOrPartition = ErrorCode(3)
    /// 5: the partition has no leader right now.
    public static let leaderNotAvailable = ErrorCode(5)
    /// 6: this node does not lead the partition.
    public static let notLeaderOrFollower = ErrorCode(6)
    /// 7: the request timed out (e.g. acks=all not committed in time).
    public static let requestTimedOut = ErrorCode(7)
    /// 10: batch larger than max.message.bytes.
    public static let messageTooLarge = ErrorCode(10)
    /// 14: the coordinator is still loading its state.
    public static let coordinatorLoadInProgress = ErrorCode(14)
    /// 15: no coordinator available.
    public static let coordinatorNotAvailable = ErrorCode(15)
    /// 16: this node is not the group's coordinator.
    public static let notCoordinator = ErrorCode(16)
    /// 17: invalid topic name.
    public static let invalidTopicException = ErrorCode(17)
    /// 19: too few in-sync replicas.
    public static let notEnoughReplicas = ErrorCode(19)
    /// 20: too few in-sync replicas after the append.
    public static let notEnoughReplicasAfterAppend = ErrorCode(20)
    /// 21: acks not in {0, 1, -1}.
    public static let invalidRequiredAcks = ErrorCode(21)
    /// 22: stale generation.
    public static let illegalGeneration = ErrorCode(22)
    /// 23: protocol type or list mismatch.
    public static let inconsistentGroupProtocol = ErrorCode(23)
    /// 24: empty or invalid group id.
    public static let invalidGroupId = ErrorCode(24)
    /// 25: member not in the group.
    public static let unknownMemberId = ErrorCode(25)
    /// 26: session timeout out of bounds.
    public static let invalidSessionTimeout = ErrorCode(26)
    /// 27: the group is rebalancing; rejoin.
    public static let rebalanceInProgress = ErrorCode(27)
    /// 28: committed metadata too large.
    public static let invalidCommitOffsetSize = ErrorCode(28)
    /// 35: this API version is not supported.
    public static let unsupportedVersion = ErrorCode(35)
    /// 36: the topic exists already.
    public static let topicAlreadyExists = ErrorCode(36)
    /// 37: invalid partition count.
    public static let invalidPartitions = ErrorCode(37)
    /// 38: invalid replication factor.
    public static let invalidReplicationFactor = ErrorCode(38)
    /// 40: invalid configuration.
    public static let invalidConfig = ErrorCode(40)
    /// 41: this node is not the controller.
    public static let notController = ErrorCode(41)
    /// 42: malformed request.
    public static let invalidRequest = ErrorCode(42)
    /// 45: idempotent sequence gap.
    public static let outOfOrderSequenceNumber = ErrorCode(45)
    /// 46: duplicate idempotent sequence.
    public static let duplicateSequenceNumber = ErrorCode(46)
    /// 47: stale producer epoch.
    public static let invalidProducerEpoch = ErrorCode(47)
    /// 56: disk failure.
    public static let kafkaStorageError = ErrorCode(56)
    /// 59: producer state expired.
    public static let unknownProducerId = ErrorCode(59)
    /// 68: the group is not empty.
    public static let nonEmptyGroup = ErrorCode(68)
    /// 69: no such group.
    public static let groupIdNotFound = ErrorCode(69)
    /// 70: fetch session not found.
    public static let fetchSessionIdNotFound = ErrorCode(70)
    /// 71: invalid fetch session epoch.
    public static let invalidFetchSessionEpoch = ErrorCode(71)
    /// 74: the leader epoch in the request is older than the leader's.
    public static let fencedLeaderEpoch = ErrorCode(74)
    /// 75: the leader epoch in the request is newer than the leader's.
    public static let unknownLeaderEpoch = ErrorCode(75)
    /// 76: compression type not supported.
    public static let unsupportedCompressionType = ErrorCode(76)
    /// 78: offset not available yet (e.g. right after a leader change).
    public static let offsetNotAvailable = ErrorCode(78)
    /// 79: JoinGroup must be retried with the member id given.
    public static let memberIdRequired = ErrorCode(79)
    /// 81: the group is full.
    public static let groupMaxSizeReached = ErrorCode(81)
    /// 82: another member holds this group instance id.
    public static let fencedInstanceId = ErrorCode(82)
    /// 87: record-level validation failed.
    public static let invalidRecord = ErrorCode(87)
    /// 110: KIP-848 member epoch fenced.
    public static let fencedMemberEpoch = ErrorCode(110)
    /// 113: KIP-848 stale member epoch.
    public static let staleMemberEpoch = ErrorCode(113)

    private static let names: [Int16: String] = [
        -1: "UNKNOWN_SERVER_ERROR", 0: "NONE", 1: "OFFSET_OUT_OF_RANGE", 2: "CORRUPT_MESSAGE",
        3: "UNKNOWN_TOPIC_OR_PARTITION", 5: "LEADER_NOT_AVAILABLE", 6: "NOT_LEADER_OR_FOLLOWER",
        7: "REQUEST_TIMED_OUT", 10: "MESSAGE_TOO_LARGE", 14: "COORDINATOR_LOAD_IN_PROGRESS",
        15: "COORDINATOR_NOT_AVAILABLE", 16: "NOT_COORDINATOR", 17: "INVALID_TOPIC_EXCEPTION",
        19: "NOT_ENOUGH_REPLICAS", 20: "NOT_ENOUGH_REPLICAS_AFTER_APPEND", 21: "INVALID_REQUIRED_ACKS",
        22: "ILLEGAL_GENERATION", 23: "INCONSISTENT_GROUP_PROTOCOL", 24: "INVALID_GROUP_ID",
        25: "UNKNOWN_MEMBER_ID", 26: "INVALID_SESSION_TIMEOUT", 27: "REBALANCE_IN_PROGRESS",
        28: "INVALID_COMMIT_OFFSET_SIZE", 35: "UNSUPPORTED_VERSION", 36: "TOPIC_ALREADY_EXISTS",
        37: "INVALID_PARTITIONS", 38: "INVALID_REPLICATION_FACTOR", 40: "INVALID_CONFIG", 41: "NOT_CONTROLLER",
        42: "INVALID_REQUEST", 45: "OUT_OF_ORDER_SEQUENCE_NUMBER", 46: "DUPLICATE_SEQUENCE_NUMBER",
        47: "INVALID_PRODUCER_EPOCH", 56: "KAFKA_STORAGE_ERROR", 59: "UNKNOWN_PRODUCER_ID",
        68: "NON_EMPTY_GROUP", 69: "GROUP_ID_NOT_FOUND", 70: "FETCH_SESSION_ID_NOT_FOUND",
        71: "INVALID_FETCH_SESSION_EPOCH", 74: "FENCED_LEADER_EPOCH", 75: "UNKNOWN_LEADER_EPOCH",
        76: "UNSUPPORTED_COMPRESSION_TYPE", 78: "OFFSET_NOT_AVAILABLE", 79: "MEMBER_ID_REQUIRED",
        81: "GROUP_MAX_SIZE_REACHED", 82: "FENCED_INSTANCE_ID", 87: "INVALID_RECORD",
        110: "FENCED_MEMBER_EPOCH", 113: "STALE_MEMBER_EPOCH",
    ]

    /// Kafka's name for the code (`UNKNOWN_TOPIC_OR_PARTITION`), or `UNKNOWN(n)` for a code Keel does not name.
    public var name: String { Self.names[rawValue] ?? "UNKNOWN(\(rawValue))" }

    /// Whether a client may retry the same request (Kafka's `RetriableException` subclasses).
    public var isRetriable: Bool {
        switch rawValue {
        case 1, 2, 3, 5, 6, 7, 14, 15, 16, 19, 20, 56, 74, 75, 78: true
        default: false
        }
    }

    /// `NAME(code)`, e.g. `NOT_LEADER_OR_FOLLOWER(6)`.
    public var description: String { "\(name)(\(rawValue))" }
}
