// `keel broker`: runs one node until SIGTERM or SIGINT, then shuts down cleanly.
import ArgumentParser
import Broker
import BrokerServer
import ConsumerGroups
import LogStorage
import Logging
import Raft

struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Run one Keel node that serves Kafka clients (default 127.0.0.1:9092, data under ./.keel/).",
        discussion: """
            Alone, a node is a cluster of one. To run a cluster, start every node with the same --voters list \
            (id@host:port of each node's cluster port) and its own --id, --listen, --cluster-listen and \
            --data-dir; cluster/up does this for a local cluster.
            """
    )

    @Option(name: .customLong("id"), help: "This node's id.")
    var nodeId: Int32 = 1

    @Option(help: "The data directory (default: ./.keel/node-<id>).")
    var dataDir: String?

    @Option(help: "The address to listen on, host:port (port 0 picks a free port).")
    var listen = "127.0.0.1:9092"

    @Option(help: "The address clients are told to connect to, host:port (default: the listen address).")
    var advertisedListener: String?

    @Option(help: "The cluster port (Raft traffic between nodes), host:port (default: this node's --voters entry).")
    var clusterListen: String?

    @Option(help: "Every node of the cluster: id@host:port of its cluster port, comma-separated (default: this node alone).")
    var voters: String?

    @Option(help: "The cluster's name; nodes of another cluster are refused.")
    var clusterId = "keel"

    @Option(help: "Replicas of a topic created without a replication factor (default.replication.factor).")
    var defaultReplicationFactor: Int16 = 3

    @Option(help: "How long a group's first rebalance waits for more members (group.initial.rebalance.delay.ms).")
    var groupInitialRebalanceDelayMs: Int64 = 3000

    @Option(help: "The shortest session timeout a consumer may ask for (group.min.session.timeout.ms).")
    var groupMinSessionTimeoutMs: Int32 = 6000

    @Option(help: "The longest session timeout a consumer may ask for (group.max.session.timeout.ms).")
    var groupMaxSessionTimeoutMs: Int32 = 1_800_000

    @Option(help: "How long the offsets of an empty group are kept (offsets.retention.minutes).")
    var offsetsRetentionMinutes: Int64 = 7 * 24 * 60

    @Option(help: "Event loop threads (default: one per core).")
    var threads: Int?

    @Option(help: "fsync: acks=all is answered after the fsync that covers the batch; none: after the write.")
    var flushPolicy = "fsync"

    @Option(help: "Create unknown topics that clients ask for: true or false.")
    var autoCreateTopics = "true"

    @Option(help: "Partitions of an automatically created topic (num.partitions).")
    var defaultPartitions: Int32 = 1

    @Option(help: "Default compression.type of topics: lz4 or producer.")
    var compressionType = "lz4"

    @Option(help: "Default segment.bytes of topics.")
    var logSegmentBytes = 128 * 1024 * 1024

    @Option(help: "Default retention.ms of topics (-1 = forever).")
    var logRetentionMs: Int64 = LogConfig.sevenDaysMs

    @Option(help: "Default retention.bytes of topics (-1 = no limit).")
    var logRetentionBytes: Int64 = -1

    @Option(help: "Default max.message.bytes of topics.")
    var messageMaxBytes = 1_048_588

    @Option(help: "How often retention runs, in milliseconds.")
    var logRetentionCheckIntervalMs: Int64 = 300_000

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical.")
    var logLevel = "info"

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw CommandError(
                "--log-level \(logLevel) is not one of trace, debug, info, notice, warning, error, critical")
        }
        let (listenHost, listenPort) = try Self.hostPort(listen, option: "--listen")
        let (advertisedHost, advertisedPort) =
            try advertisedListener.map {
                try Self.hostPort($0, option: "--advertised-listener")
            } ?? (listenHost == "0.0.0.0" || listenHost == "::" ? "127.0.0.1" : listenHost, listenPort)
        let policy: FlushPolicy
        switch flushPolicy {
        case "fsync": policy = .fsync
        case "none": policy = .none
        default: throw CommandError("--flush-policy \(flushPolicy) must be fsync or none")
        }
        guard let autoCreate = Bool(autoCreateTopics) else {
            throw CommandError("--auto-create-topics \(autoCreateTopics) must be true or false")
        }
        guard let compression = TopicCompression(rawValue: compressionType) else {
            throw CommandError("--compression-type \(compressionType) must be lz4 or producer")
        }
        let topicDefaults = TopicConfig(
            retentionMs: logRetentionMs, retentionBytes: logRetentionBytes, segmentBytes: logSegmentBytes,
            maxMessageBytes: messageMaxBytes, compression: compression)
        var broker = BrokerConfig(
            nodeId: nodeId, advertisedHost: advertisedHost, advertisedPort: Int32(advertisedPort),
            dataDirectory: dataDir ?? ".keel/node-\(nodeId)", autoCreateTopics: autoCreate,
            defaultPartitions: defaultPartitions, topicDefaults: topicDefaults, flushPolicy: policy,
            retentionCheckIntervalMs: logRetentionCheckIntervalMs)
        do throws(TopicConfigError) {
            try broker.validate()
        } catch {
            throw CommandError(error.description)
        }
        var voterList: VoterList?
        if let voters {
            do throws(VotersError) {
                voterList = try VoterList.parse(voters)
            } catch {
                throw CommandError(error.description)
            }
        }
        let me = NodeID(UInt64(max(0, nodeId)))
        if let voterList, voterList.addresses[me] == nil {
            throw CommandError("--voters does not name this node's --id \(nodeId); add \(nodeId)@host:port")
        }
        let clusterAddress: PeerAddress
        if let clusterListen {
            do throws(VotersError) {
                clusterAddress = try PeerAddress.parse(clusterListen, allowPortZero: voterList == nil)
            } catch {
                throw CommandError("--cluster-listen: \(error.description.replacingOccurrences(of: "--voters: ", with: ""))")
            }
        } else {
            clusterAddress = voterList?.addresses[me] ?? PeerAddress(host: listenHost, port: 0)
        }
        guard groupInitialRebalanceDelayMs >= 0 else {
            throw CommandError("--group-initial-rebalance-delay-ms must be >= 0")
        }
        guard groupMinSessionTimeoutMs > 0, groupMinSessionTimeoutMs <= groupMaxSessionTimeoutMs else {
            throw CommandError("--group-min-session-timeout-ms must be positive and at most --group-max-session-timeout-ms")
        }
        guard offsetsRetentionMinutes >= 1, offsetsRetentionMinutes <= Int64.max / 60_000 else {
            throw CommandError("--offsets-retention-minutes must be at least 1")
        }
        broker.groupCoordinator = GroupCoordinatorConfig(
            sessionTimeoutMsMin: groupMinSessionTimeoutMs, sessionTimeoutMsMax: groupMaxSessionTimeoutMs,
            initialRebalanceDelayMs: groupInitialRebalanceDelayMs, offsetsRetentionMs: offsetsRetentionMinutes * 60_000)
        broker.clusterId = clusterId
        broker.defaultReplicationFactor = defaultReplicationFactor
        broker.voters = voterList?.nodeIDs.map { Int32(truncatingIfNeeded: $0.value) } ?? [nodeId]
        do throws(TopicConfigError) {
            try broker.validate()
        } catch {
            throw CommandError(error.description)
        }
        var config = BrokerServerConfig(
            broker: broker, listenHost: listenHost, listenPort: listenPort, clusterListen: clusterAddress,
            voters: voterList)
        if let threads {
            guard threads >= 1, threads <= 256 else { throw CommandError("--threads \(threads) must be in 1...256") }
            config.eventLoopThreads = threads
        }
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "keel.broker")
        logger[metadataKey: "node"] = "\(nodeId)"
        try await BrokerService.runUntilSignalled(config: config, logger: logger)
    }

    /// Splits `host:port`; the port may be 0 only for listening.
    static func hostPort(_ text: String, option: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port), colon != text.startIndex
        else {
            throw CommandError("\(option) \(text) must look like host:port, for example 127.0.0.1:9092")
        }
        return (String(text[..<colon]), port)
    }
}
