// ConsumerGroups: the classic Kafka consumer-group coordinator as a pure state machine.
//
// Owns: the state of every group that hashes to one `__consumer_offsets` partition (members, generation,
// chosen protocol, leader, assignments, committed offsets), the group rules of PROTOCOL.md §8 (join barrier
// with the initial rebalance delay, SyncGroup barrier, session and rebalance timers, static membership,
// offset-commit validation, offset expiry), and the record format of that partition (`GroupRecord`).
//
// Must never: read a clock (time comes in as `now`), draw randomness (member ids come from a counter and a
// seed passed in), do I/O, or parse the consumer-protocol payloads (subscription and assignment bytes are the
// clients' own and are carried opaquely).
//
// Main types: `GroupCoordinator` (events in: join, sync, heartbeat, leave, offsetCommit, offsetFetch,
// describe, list, deleteGroups, tick, load; a `GroupEffects` value out), `GroupEffects` (replies to send now,
// and record appends whose replies wait until the partition's Raft group commits them), `GroupRecord`
// (Kafka's own `__consumer_offsets` key/value layout), `GroupCoordinatorConfig`. Internally each group is a
// `Group` whose `GroupState` enum carries the timers that exist only in that state (Group.swift).
//
// Hosting (the Broker's part): run one `GroupCoordinator` per `__consumer_offsets` partition this node leads.
// On becoming leader create it with `loading: true`, feed every record of the partition to `load(_:)`, then
// call `finishLoading(now:)`; until then every request is answered COORDINATOR_LOAD_IN_PROGRESS. For each
// event, send `effects.replies` at once; append each `effects.appends[i].records` to the partition as one batch
// and send its `repliesOnCommit` when the batch is committed (high watermark past it). If that append fails
// (lost leadership), send `repliesOnFailure(.notCoordinator)` instead and drop the coordinator: the new leader
// replays the log. Call `tick(now:)` periodically (e.g. every 100–500 ms): timers fire only there.
//
// After a load, a group with members is Stable with its stored generation, leader, protocol and assignments,
// and every member's session timer starts afresh (members carry on by heartbeating, or are expired and the
// group rebalances), as Kafka does after a coordinator failover; a group without members is Empty. A
// rebalance that was in progress when the old coordinator died is not in the log (only settled generations
// are): its members get ILLEGAL_GENERATION or UNKNOWN_MEMBER_ID and rejoin.
//
// Known simplifications: state changes (offsets, the Stable transition) are applied when the event happens,
// before the records are committed, so a failed append must drop the coordinator (above); OffsetCommit's
// `retention_time_ms` is ignored; offsets of partitions a Stable group no longer subscribes to do not expire
// (that needs the consumer-protocol payload); JoinGroup never answers MEMBER_ID_REQUIRED (optional, §8).

import KafkaProtocol
import NIOCore

/// The host's clock reading, in milliseconds. Only differences matter.
public typealias Milliseconds = Int64

/// Identifies one request the host is waiting to answer. JoinGroup and SyncGroup replies are parked and
/// released by later events, so every reply names the token of the request it answers.
public struct RequestToken: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The host's number for the request (e.g. connection id and correlation id packed together).
    public var rawValue: UInt64

    /// Wraps the host's number.
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }

    /// Orders by number.
    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.rawValue < rhs.rawValue }

    /// `#n`.
    public var description: String { "#\(rawValue)" }
}

/// Limits and timers of the coordinator, with Kafka's broker defaults (`GroupCoordinatorConfig.java`).
public struct GroupCoordinatorConfig: Equatable, Sendable {
    /// `group.min.session.timeout.ms`: a JoinGroup asking for less gets INVALID_SESSION_TIMEOUT.
    public var sessionTimeoutMsMin: Int32
    /// `group.max.session.timeout.ms`: a JoinGroup asking for more gets INVALID_SESSION_TIMEOUT.
    public var sessionTimeoutMsMax: Int32
    /// `group.initial.rebalance.delay.ms`: how long a rebalance started from Empty waits for more members.
    public var initialRebalanceDelayMs: Int64
    /// `offsets.retention.minutes`, in milliseconds: how long offsets of an Empty group are kept.
    public var offsetsRetentionMs: Int64
    /// `offsets.retention.check.interval.ms`: how often `tick` looks for expired offsets.
    public var offsetsRetentionCheckIntervalMs: Int64
    /// `offset.metadata.max.bytes`: a longer commit metadata string gets OFFSET_METADATA_TOO_LARGE.
    public var offsetMetadataBytesMax: Int
    /// `group.max.size`: a JoinGroup beyond it gets GROUP_MAX_SIZE_REACHED.
    public var groupMembersMax: Int

    /// Creates a configuration; the defaults are Kafka's.
    public init(
        sessionTimeoutMsMin: Int32 = 6000,
        sessionTimeoutMsMax: Int32 = 1_800_000,
        initialRebalanceDelayMs: Int64 = 3000,
        offsetsRetentionMs: Int64 = 7 * 24 * 60 * 60 * 1000,
        offsetsRetentionCheckIntervalMs: Int64 = 600_000,
        offsetMetadataBytesMax: Int = 4096,
        groupMembersMax: Int = Int(Int32.max)
    ) {
        precondition(sessionTimeoutMsMin > 0 && sessionTimeoutMsMin <= sessionTimeoutMsMax, "session timeout bounds")
        precondition(initialRebalanceDelayMs >= 0 && offsetsRetentionMs > 0, "timers must not be negative")
        precondition(offsetsRetentionCheckIntervalMs > 0, "the offset expiry interval must be positive")
        precondition(offsetMetadataBytesMax >= 0 && groupMembersMax > 0, "limits must be positive")
        self.sessionTimeoutMsMin = sessionTimeoutMsMin
        self.sessionTimeoutMsMax = sessionTimeoutMsMax
        self.initialRebalanceDelayMs = initialRebalanceDelayMs
        self.offsetsRetentionMs = offsetsRetentionMs
        self.offsetsRetentionCheckIntervalMs = offsetsRetentionCheckIntervalMs
        self.offsetMetadataBytesMax = offsetMetadataBytesMax
        self.groupMembersMax = groupMembersMax
    }
}

/// A response the coordinator produced, tagged with its API.
public enum GroupResponse: Equatable, Sendable {
    /// A JoinGroup v5 response.
    case join(JoinGroupResponse)
    /// A SyncGroup v3 response.
    case sync(SyncGroupResponse)
    /// A Heartbeat v1 response.
    case heartbeat(HeartbeatResponse)
    /// A LeaveGroup v1 response.
    case leave(LeaveGroupResponse)
    /// An OffsetCommit v3 response.
    case offsetCommit(OffsetCommitResponse)
    /// An OffsetFetch v3 response.
    case offsetFetch(OffsetFetchResponse)
    /// A DescribeGroups v3 response.
    case describe(DescribeGroupsResponse)
    /// A ListGroups v2 response.
    case list(ListGroupsResponse)
    /// The outcome of `deleteGroups`, one entry per group asked for (DeleteGroups has no wire struct yet).
    case deleteGroups([DeletedGroup])
}

extension GroupResponse {
    /// The same API's response carrying `code` everywhere it has an error field: what the host sends for a
    /// reply whose append failed (NOT_COORDINATOR after a lost leadership).
    public func failed(with code: ErrorCode) -> GroupResponse {
        switch self {
        case .join(let response):
            return Group.joinError(code, memberId: response.memberId)
        case .sync:
            return Group.syncError(code)
        case .heartbeat:
            return .heartbeat(HeartbeatResponse(errorCode: code))
        case .leave:
            return .leave(LeaveGroupResponse(errorCode: code))
        case .offsetCommit(var response):
            for topic in response.topics.indices {
                for partition in response.topics[topic].partitions.indices {
                    response.topics[topic].partitions[partition].errorCode = code
                }
            }
            return .offsetCommit(response)
        case .offsetFetch:
            return .offsetFetch(OffsetFetchResponse(topics: [], errorCode: code))
        case .describe(var response):
            for group in response.groups.indices { response.groups[group].errorCode = code }
            return .describe(response)
        case .list:
            return .list(ListGroupsResponse(errorCode: code, groups: []))
        case .deleteGroups(let outcomes):
            return .deleteGroups(outcomes.map { DeletedGroup(groupId: $0.groupId, errorCode: code) })
        }
    }
}

extension GroupAppend {
    /// The replies to send instead of `repliesOnCommit` when the append fails.
    public func repliesOnFailure(_ code: ErrorCode) -> [GroupReply] {
        repliesOnCommit.map { GroupReply(token: $0.token, response: $0.response.failed(with: code)) }
    }
}

/// The outcome of deleting one group: NONE, GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, INVALID_GROUP_ID or
/// COORDINATOR_LOAD_IN_PROGRESS (Kafka's DeleteGroups errors).
public struct DeletedGroup: Equatable, Sendable {
    /// The group id.
    public var groupId: String
    /// The error, or NONE.
    public var errorCode: ErrorCode

    /// Creates a value with every field given.
    public init(groupId: String, errorCode: ErrorCode) {
        self.groupId = groupId
        self.errorCode = errorCode
    }
}

/// A response to send, and the request it answers.
public struct GroupReply: Equatable, Sendable {
    /// The token the host passed in with the request.
    public var token: RequestToken
    /// The response body.
    public var response: GroupResponse

    /// Creates a value with every field given.
    public init(token: RequestToken, response: GroupResponse) {
        self.token = token
        self.response = response
    }
}

/// Records to append to the coordinator's `__consumer_offsets` partition, and the replies that may be sent
/// only once those records are committed.
public struct GroupAppend: Equatable, Sendable {
    /// The group the records belong to.
    public var groupId: String
    /// The records, in order; append them as one batch.
    public var records: [GroupRecord]
    /// Replies to send once the batch is committed.
    public var repliesOnCommit: [GroupReply]

    /// Creates a value with every field given.
    public init(groupId: String, records: [GroupRecord], repliesOnCommit: [GroupReply]) {
        self.groupId = groupId
        self.records = records
        self.repliesOnCommit = repliesOnCommit
    }
}

/// What the host must do after an event.
public struct GroupEffects: Equatable, Sendable {
    /// Replies to send now (including parked JoinGroup / SyncGroup requests released by this event).
    public var replies: [GroupReply]
    /// Appends to make, in order, each with the replies that wait for its commit (appends commit in log order,
    /// so a reply attached to a later append also waits for the earlier ones).
    public var appends: [GroupAppend]

    /// Creates a value with every field given.
    public init(replies: [GroupReply] = [], appends: [GroupAppend] = []) {
        self.replies = replies
        self.appends = appends
    }

    /// Whether there is nothing to do.
    public var isEmpty: Bool { replies.isEmpty && appends.isEmpty }

    mutating func reply(_ token: RequestToken, _ response: GroupResponse) {
        replies.append(GroupReply(token: token, response: response))
    }

    mutating func append(_ groupId: String, _ records: [GroupRecord], then replies: [GroupReply] = []) {
        appends.append(GroupAppend(groupId: groupId, records: records, repliesOnCommit: replies))
    }
}

/// A group's state, as DescribeGroups names it.
public enum GroupStateName: String, Equatable, Sendable {
    /// No members; offsets may still be committed by standalone consumers.
    case empty = "Empty"
    /// Waiting for members to (re)join.
    case preparingRebalance = "PreparingRebalance"
    /// Waiting for the leader's assignment.
    case completingRebalance = "CompletingRebalance"
    /// Every member has its assignment; heartbeats keep it alive.
    case stable = "Stable"
    /// Deleted; no longer served.
    case dead = "Dead"
}

extension ErrorCode {
    /// 12: commit metadata longer than `offset.metadata.max.bytes`.
    static let offsetMetadataTooLarge = ErrorCode(12)
}
