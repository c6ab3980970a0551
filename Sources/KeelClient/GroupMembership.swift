// What a group member does about each answer from its coordinator: the decisions of Kafka's
// `AbstractCoordinator` / `ConsumerCoordinator` and librdkafka's `rd_kafka_cgrp`, as a pure
// function so that they can be tested without a broker.

import KafkaProtocol

/// What a consumer does after a group request (FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
/// OffsetCommit, OffsetFetch) failed.
enum GroupErrorAction: Equatable, Sendable {
    /// REBALANCE_IN_PROGRESS: the generation is still valid; give the partitions up (committing
    /// first with auto-commit) and rejoin at once.
    case rejoin
    /// ILLEGAL_GENERATION: the generation is over; the partitions are lost (a commit would be
    /// refused); rejoin at once with the same member id.
    case resetGenerationAndRejoin
    /// UNKNOWN_MEMBER_ID: the coordinator forgot the member (session expired); the partitions are
    /// lost; rejoin at once as a new member.
    case resetMemberAndRejoin
    /// NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, or the connection to the coordinator failed:
    /// find the coordinator again, then retry after a backoff.
    case rediscoverCoordinator
    /// COORDINATOR_LOAD_IN_PROGRESS (the coordinator is replaying the group's records) or another
    /// retriable error: retry the same coordinator after a backoff.
    case retryLater
    /// Anything else (FENCED_INSTANCE_ID, INVALID_SESSION_TIMEOUT, INCONSISTENT_GROUP_PROTOCOL,
    /// GROUP_MAX_SIZE_REACHED, an undecodable answer, ...): the consumer stops and reports it.
    case fatal

    /// The action for `error`.
    static func classify(_ error: KeelClientError) -> GroupErrorAction {
        switch error {
        case .connectFailed, .connectionClosed, .requestTimedOut:
            return .rediscoverCoordinator
        case .broker(let code, _):
            switch code {
            case .rebalanceInProgress: return .rejoin
            case .illegalGeneration: return .resetGenerationAndRejoin
            case .unknownMemberId: return .resetMemberAndRejoin
            case .notCoordinator, .coordinatorNotAvailable: return .rediscoverCoordinator
            case .coordinatorLoadInProgress: return .retryLater
            case .fencedInstanceId, .invalidSessionTimeout, .inconsistentGroupProtocol, .groupMaxSizeReached,
                .invalidGroupId:
                return .fatal
            default: return code.isRetriable ? .retryLater : .fatal
            }
        default:
            return .fatal
        }
    }

    /// The action for `error` answering a request of `api`. A SyncGroup refused with an error
    /// this table does not know is retried with a new JoinGroup after a backoff, as librdkafka
    /// does (for instance librdkafka's mock cluster answers INVALID_REQUEST to a follower whose
    /// SyncGroup arrives after the leader's), unless the error is one that never gets better.
    static func classify(_ error: KeelClientError, in api: ApiKey) -> GroupErrorAction {
        let action = classify(error)
        guard api == .syncGroup, action == .fatal, case .broker(let code, _) = error else { return action }
        let permanent: Set<ErrorCode> = [
            .fencedInstanceId, .invalidSessionTimeout, .inconsistentGroupProtocol, .groupMaxSizeReached,
            .invalidGroupId,
        ]
        return permanent.contains(code) ? .fatal : .retryLater
    }

    /// Whether the member must rejoin the group.
    var rejoins: Bool {
        self == .rejoin || self == .resetGenerationAndRejoin || self == .resetMemberAndRejoin
    }
}

/// The backoff before retry number `attempt` (1, 2, ...): `baseMs × 2^(attempt-1)`, at most `maxMs`,
/// as Kafka's `retry.backoff.ms` / `retry.backoff.max.ms` (without the jitter).
func groupBackoffMs(attempt: Int, baseMs: Int64, maxMs: Int64) -> Int64 {
    let shift = min(max(attempt - 1, 0), 20)
    return min(baseMs << Int64(shift), maxMs)
}
