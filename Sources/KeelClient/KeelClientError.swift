import KafkaProtocol
import Records

/// Everything that can go wrong in a KeelClient call, typed.
///
/// `isRetriable` tells the producer and the metadata logic whether trying again (after a
/// metadata refresh and a backoff) can help.
public enum KeelClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A bootstrap address is not `host:port`.
    case invalidAddress(String)
    /// A caller passed something unusable (an empty topic name, a negative partition, ...).
    case invalidArgument(String)
    /// No TCP connection could be made to `address`.
    case connectFailed(address: String, reason: String)
    /// The connection closed (or failed) while the request was pending or before it was sent.
    case connectionClosed(address: String)
    /// No response arrived within the request timeout; the connection was closed.
    case requestTimedOut(api: ApiKey, timeoutMs: Int64)
    /// The peer sent bytes that do not decode, or answered out of order.
    case protocolViolation(String)
    /// The broker does not support the version of `api` this client speaks.
    case unsupportedVersion(api: ApiKey, version: Int16, brokerRange: ClosedRange<Int16>?)
    /// The broker answered with a Kafka error code.
    case broker(ErrorCode, context: String)
    /// The topic does not exist (after a metadata refresh).
    case unknownTopic(String)
    /// The partition does not exist in the topic.
    case unknownPartition(topic: String, partition: Int32)
    /// The partition has no leader right now.
    case leaderNotAvailable(topic: String, partition: Int32)
    /// A record batch in a Fetch response does not decode.
    case corruptBatch(RecordBatchError)
    /// A record could not be encoded into a batch.
    case batchBuild(RecordBatchError)
    /// The producer or client was closed.
    case closed
    /// A consumer has no committed offset for the partition and its `autoOffsetReset` is `.none`.
    case noCommittedOffset(topic: String, partition: Int32)
    /// `count` records handed to `KeelProducer.enqueue` were not delivered; `first` says why the first failed.
    indirect case deliveryFailed(count: Int, first: KeelClientError)

    /// Whether retrying the same operation later may succeed.
    public var isRetriable: Bool {
        switch self {
        case .connectFailed, .connectionClosed, .requestTimedOut, .leaderNotAvailable: true
        // OFFSET_OUT_OF_RANGE will not change by asking again (Kafka's OffsetOutOfRangeException is
        // not retriable): the caller must pick another offset.
        case .broker(.offsetOutOfRange, _): false
        case .broker(let code, _): code.isRetriable
        default: false
        }
    }

    /// Whether the error means our metadata (leaders, topics) may be stale.
    public var invalidatesMetadata: Bool {
        switch self {
        case .connectFailed, .connectionClosed, .leaderNotAvailable, .unknownTopic, .unknownPartition: true
        case .broker(let code, _):
            code == .notLeaderOrFollower || code == .unknownTopicOrPartition || code == .leaderNotAvailable
                || code == .fencedLeaderEpoch || code == .unknownLeaderEpoch
        default: false
        }
    }

    /// One line for people.
    public var description: String {
        switch self {
        case .invalidAddress(let address): "'\(address)' is not host:port"
        case .invalidArgument(let reason): reason
        case .connectFailed(let address, let reason): "cannot connect to \(address): \(reason)"
        case .connectionClosed(let address): "connection to \(address) closed"
        case .requestTimedOut(let api, let ms): "\(api) request got no answer within \(ms) ms"
        case .protocolViolation(let reason): "protocol violation: \(reason)"
        case .unsupportedVersion(let api, let version, let range):
            if let range {
                "broker supports \(api) v\(range.lowerBound)–v\(range.upperBound), this client speaks v\(version)"
            } else {
                "broker does not support \(api) (this client speaks v\(version))"
            }
        case .broker(let code, let context): context.isEmpty ? "\(code)" : "\(context): \(code)"
        case .unknownTopic(let topic): "topic '\(topic)' does not exist"
        case .unknownPartition(let topic, let partition): "topic '\(topic)' has no partition \(partition)"
        case .leaderNotAvailable(let topic, let partition): "\(topic)-\(partition) has no leader"
        case .corruptBatch(let error): "corrupt record batch: \(error)"
        case .batchBuild(let error): "cannot build record batch: \(error)"
        case .closed: "the client is closed"
        case .noCommittedOffset(let topic, let partition):
            "group has no committed offset for \(topic)-\(partition) and autoOffsetReset is none"
        case .deliveryFailed(let count, let first): "\(count) records were not delivered: \(first)"
        }
    }
}
