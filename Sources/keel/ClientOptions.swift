// What `keel topic`, `keel produce`, `keel consume` and `keel group` share: the bootstrap option,
// the client they build from it, and the one-line advice printed for each client error.
import ArgumentParser
import KafkaProtocol
import KeelClient

/// `--bootstrap host:port[,host:port]`.
struct ClientOptions: ParsableArguments {
    @Option(name: .long, help: "Brokers to start from, host:port[,host:port...].")
    var bootstrap = "127.0.0.1:9092"

    /// A client for `--bootstrap`, or a one-line mistake.
    func makeClient() throws -> KeelClient {
        do {
            var configuration = try KeelClientConfiguration(bootstrap: bootstrap)
            configuration.clientId = "keel-cli"
            configuration.connectTimeoutMs = 5_000
            configuration.retriesMax = 3
            return KeelClient(configuration: configuration)
        } catch {
            throw CommandError("--bootstrap '\(bootstrap)' is not host:port[,host:port]; write e.g. 127.0.0.1:9092")
        }
    }

    /// The one line to print for `error`, saying what to do about it.
    func explain(_ error: KeelClientError, topic: String? = nil, group: String? = nil) -> CommandError {
        let groupName = group.map { "group '\($0)'" } ?? "the group"
        switch error {
        case .broker(.coordinatorNotAvailable, _), .broker(.notCoordinator, _), .broker(.coordinatorLoadInProgress, _):
            return CommandError(
                "no coordinator for \(groupName) answers yet (\(error)); the cluster may still be starting or "
                    + "not host consumer groups: retry in a moment")
        case .broker(.nonEmptyGroup, _):
            return CommandError("\(groupName) still has members; stop its consumers first")
        case .broker(.groupIdNotFound, _):
            return CommandError("\(groupName) does not exist; see the groups with `keel group list`")
        case .broker(.unknownMemberId, _), .broker(.illegalGeneration, _), .broker(.rebalanceInProgress, _):
            return CommandError("\(groupName) has active members, which own its offsets; stop its consumers first")
        case .broker(.fencedInstanceId, _):
            return CommandError("another member of \(groupName) uses this group instance id; give each member its own")
        case .connectFailed, .connectionClosed:
            return CommandError(
                "no broker answers at \(bootstrap); start one with `keel broker` or pass --bootstrap host:port")
        case .unknownTopic(let name):
            return CommandError("topic '\(name)' does not exist; create it with `keel topic create \(name)`")
        case .unknownPartition(let name, let partition):
            return CommandError(
                "topic '\(name)' has no partition \(partition); see its partitions with `keel topic describe \(name)`")
        case .broker(.topicAlreadyExists, _):
            let name = topic ?? "the topic"
            return CommandError(
                "topic '\(name)' already exists; pick another name or `keel topic delete \(name)` first")
        case .broker(.offsetOutOfRange, _):
            let name = topic ?? "the topic"
            return CommandError(
                "that offset is outside the log; see each partition's offsets with `keel topic describe \(name)`")
        case .broker(.invalidReplicationFactor, _):
            return CommandError(
                "the replication factor is larger than the number of brokers; lower --replication-factor")
        case .broker(.invalidConfig, let context):
            return CommandError("a --config entry was refused (\(context)); check the name and value")
        case .unsupportedVersion(let api, _, _):
            return CommandError(
                "the broker at \(bootstrap) does not support \(api); use a Keel or Kafka broker that does")
        case .requestTimedOut(let api, let ms):
            return CommandError("the broker did not answer \(api) within \(ms) ms; check that it is healthy and retry")
        case .deliveryFailed(let count, let first):
            return CommandError("\(count) records were not delivered (\(first)); nothing after them is guaranteed")
        default:
            return CommandError("\(error)")
        }
    }
}

/// Parses `k=v` entries (for `--config` and `--header`); `what` names the option in the error.
func parseKeyValues(_ entries: [String], option: String) throws -> [(String, String)] {
    try entries.map { entry in
        guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
            throw CommandError("\(option) '\(entry)' is not key=value; write e.g. \(option) name=value")
        }
        return (String(entry[..<equals]), String(entry[entry.index(after: equals)...]))
    }
}
