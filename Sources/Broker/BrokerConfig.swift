import ConsumerGroups
import LogStorage
import Records

/// What a topic stores when a producer sends a batch (`compression.type`).
public enum TopicCompression: String, Sendable, Codable, CaseIterable {
    /// Keel's default: an uncompressed batch is LZ4-compressed before it is stored; a batch
    /// the producer compressed (any codec) is stored exactly as sent.
    case lz4
    /// Every batch is stored exactly as the producer sent it.
    case producer
}

/// A topic configuration value that was refused (Kafka INVALID_CONFIG), with the reason.
public struct TopicConfigError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The one line sent back to the client.
    public var description: String

    /// Wraps the reason.
    public init(_ description: String) { self.description = description }
}

/// The per-topic settings Keel honours, with Kafka's names on the wire.
///
/// Every field carries its unit; -1 means unlimited where Kafka says so.
public struct TopicConfig: Sendable, Equatable, Codable {
    /// `retention.ms`: delete segments whose newest batch is older; -1 = keep forever.
    public var retentionMs: Int64
    /// `retention.bytes`: delete old segments while the partition stays at least this large; -1 = no limit.
    public var retentionBytes: Int64
    /// `segment.bytes`: a segment rolls before it would grow past this.
    public var segmentBytes: Int
    /// `max.message.bytes`: the largest batch stored (after broker-side compression).
    public var maxMessageBytes: Int
    /// `compression.type`.
    public var compression: TopicCompression

    /// Kafka's defaults, except `compression.type=lz4`.
    public init(
        retentionMs: Int64 = LogConfig.sevenDaysMs,
        retentionBytes: Int64 = -1,
        segmentBytes: Int = 128 * 1024 * 1024,
        maxMessageBytes: Int = 1_048_588,
        compression: TopicCompression = .lz4
    ) {
        self.retentionMs = retentionMs
        self.retentionBytes = retentionBytes
        self.segmentBytes = segmentBytes
        self.maxMessageBytes = maxMessageBytes
        self.compression = compression
    }

    /// The names CreateTopics accepts, in the order DescribeConfigs lists them.
    public static let settableNames = [
        "cleanup.policy", "compression.type", "max.message.bytes", "retention.bytes", "retention.ms", "segment.bytes",
    ]

    /// Every name DescribeConfigs reports for a topic.
    public static let describedNames = [
        "cleanup.policy", "compression.type", "max.message.bytes", "message.timestamp.type", "min.insync.replicas",
        "retention.bytes", "retention.ms", "segment.bytes",
    ]

    /// This configuration with `overrides` (Kafka names) applied, checked as a whole.
    public func applying(_ overrides: [String: String]) throws(TopicConfigError) -> TopicConfig {
        var config = self
        for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
            switch name {
            case "cleanup.policy":
                guard value == "delete" else {
                    throw TopicConfigError("cleanup.policy=\(value) is not supported (only delete)")
                }
            case "compression.type":
                guard let compression = TopicCompression(rawValue: value) else {
                    throw TopicConfigError("compression.type=\(value) is not supported (lz4 or producer)")
                }
                config.compression = compression
            case "max.message.bytes":
                config.maxMessageBytes = try Self.integer(
                    name, value, in: Int64(RecordBatchHeader.size)...Int64(Int32.max))
            case "retention.bytes":
                config.retentionBytes = Int64(try Self.integer(name, value, in: -1...Int64.max))
            case "retention.ms":
                config.retentionMs = Int64(try Self.integer(name, value, in: -1...Int64.max))
            case "segment.bytes":
                config.segmentBytes = try Self.integer(name, value, in: 1024...Int64(Int32.max))
            default:
                throw TopicConfigError("unknown or unsupported topic config \(name)")
            }
        }
        do throws(LogError) {
            try config.logConfig(flushPolicy: .fsync).validate()
        } catch {
            throw TopicConfigError("\(error)")
        }
        return config
    }

    private static func integer(_ name: String, _ value: String, in range: ClosedRange<Int64>)
        throws(TopicConfigError) -> Int
    {
        guard let number = Int64(value), range.contains(number) else {
            throw TopicConfigError("\(name)=\(value) must be an integer in \(range.lowerBound)...\(range.upperBound)")
        }
        return Int(number)
    }

    /// The value of a described config, as Kafka spells it.
    public func value(of name: String) -> String? {
        switch name {
        case "cleanup.policy": "delete"
        case "compression.type": compression.rawValue
        case "max.message.bytes": String(maxMessageBytes)
        case "message.timestamp.type": "CreateTime"
        case "min.insync.replicas": "1"
        case "retention.bytes": String(retentionBytes)
        case "retention.ms": String(retentionMs)
        case "segment.bytes": String(segmentBytes)
        default: nil
        }
    }

    /// The partition log limits for this topic.
    public func logConfig(flushPolicy: FlushPolicy) -> LogConfig {
        LogConfig(
            segmentBytesMax: segmentBytes,
            batchBytesMax: maxMessageBytes,
            retentionBytesMax: retentionBytes < 0 ? nil : Int(retentionBytes),
            retentionMsMax: retentionMs < 0 ? nil : retentionMs,
            flushPolicy: flushPolicy)
    }
}

/// One node's settings; `validate()` checks them at start-up.
public struct BrokerConfig: Sendable {
    /// This node's id (Metadata `node_id`).
    public var nodeId: Int32
    /// The host clients are told to connect to.
    public var advertisedHost: String
    /// The port clients are told to connect to; 0 until the server knows the port it bound.
    public var advertisedPort: Int32
    /// Where partition directories and the metadata file live.
    public var dataDirectory: String
    /// Whether Metadata creates unknown topics that a client asks to create (`auto.create.topics.enable`).
    public var autoCreateTopics: Bool
    /// Partitions of an automatically created topic (`num.partitions`).
    public var defaultPartitions: Int32
    /// The configuration of a topic that overrides nothing.
    public var topicDefaults: TopicConfig
    /// When appends reach the disk; the high watermark follows what is durable under it.
    public var flushPolicy: FlushPolicy
    /// How often each partition applies retention (`log.retention.check.interval.ms`).
    public var retentionCheckIntervalMs: Int64
    /// The largest request frame accepted (`socket.request.max.bytes`).
    public var requestBytesMax: Int
    /// Metadata's `cluster_id`; peers of another cluster are refused.
    public var clusterId: String
    /// The controller's voters: every node of the cluster, this one included (`--voters`).
    public var voters: [Int32]
    /// The host peers reach this node's cluster port on (registered with the controller).
    public var clusterHost: String
    /// The cluster port (Raft traffic between nodes); 0 until the server knows the port it bound.
    public var clusterPort: Int32
    /// Replicas of a topic created with replication factor -1 (`default.replication.factor`), at most the
    /// number of registered nodes.
    public var defaultReplicationFactor: Int16
    /// Raft's tick and timeouts, for every group.
    public var raft: RaftTimings
    /// The consumer-group coordinator's limits and timers (`group.*`, `offsets.*`).
    public var groupCoordinator: GroupCoordinatorConfig

    /// A single node with Kafka's defaults.
    public init(
        nodeId: Int32 = 1,
        advertisedHost: String = "127.0.0.1",
        advertisedPort: Int32 = 9092,
        dataDirectory: String = ".keel",
        autoCreateTopics: Bool = true,
        defaultPartitions: Int32 = 1,
        topicDefaults: TopicConfig = TopicConfig(),
        flushPolicy: FlushPolicy = .fsync,
        retentionCheckIntervalMs: Int64 = 300_000,
        requestBytesMax: Int = 100 * 1024 * 1024,
        clusterId: String = "keel",
        voters: [Int32]? = nil,
        clusterHost: String = "127.0.0.1",
        clusterPort: Int32 = 0,
        defaultReplicationFactor: Int16 = 3,
        raft: RaftTimings = RaftTimings(),
        groupCoordinator: GroupCoordinatorConfig = GroupCoordinatorConfig()
    ) {
        self.nodeId = nodeId
        self.advertisedHost = advertisedHost
        self.advertisedPort = advertisedPort
        self.dataDirectory = dataDirectory
        self.autoCreateTopics = autoCreateTopics
        self.defaultPartitions = defaultPartitions
        self.topicDefaults = topicDefaults
        self.flushPolicy = flushPolicy
        self.retentionCheckIntervalMs = retentionCheckIntervalMs
        self.requestBytesMax = requestBytesMax
        self.clusterId = clusterId
        self.voters = voters ?? [nodeId]
        self.clusterHost = clusterHost
        self.clusterPort = clusterPort
        self.defaultReplicationFactor = defaultReplicationFactor
        self.raft = raft
        self.groupCoordinator = groupCoordinator
    }

    /// Throws a sentence naming the first setting out of range.
    public func validate() throws(TopicConfigError) {
        guard nodeId >= 0 else { throw TopicConfigError("--id \(nodeId) must be >= 0") }
        guard (0...Int32(UInt16.max)).contains(advertisedPort) else {
            throw TopicConfigError("advertised port \(advertisedPort) must be in 0...65535 (0: the port bound)")
        }
        guard (1...Broker.partitionsMax).contains(defaultPartitions) else {
            throw TopicConfigError("default partitions \(defaultPartitions) must be in 1...\(Broker.partitionsMax)")
        }
        guard retentionCheckIntervalMs >= 1 else {
            throw TopicConfigError("retention check interval must be >= 1 ms")
        }
        guard requestBytesMax >= 1024 else { throw TopicConfigError("request bytes max must be >= 1024") }
        guard voters.contains(nodeId) else {
            throw TopicConfigError("--voters \(voters) must include this node's --id \(nodeId)")
        }
        guard Set(voters).count == voters.count, voters.allSatisfy({ $0 >= 0 }) else {
            throw TopicConfigError("--voters must name distinct node ids >= 0")
        }
        guard (1...Int16(1000)).contains(defaultReplicationFactor) else {
            throw TopicConfigError("default replication factor \(defaultReplicationFactor) must be in 1...1000")
        }
        if let problem = raft.problem { throw TopicConfigError(problem) }
        do throws(LogError) {
            try topicDefaults.logConfig(flushPolicy: flushPolicy).validate()
        } catch {
            throw TopicConfigError("\(error)")
        }
    }

    /// The broker-level configs DescribeConfigs reports (resource type 4), as Kafka names them.
    public var describedBrokerConfigs: [(name: String, value: String)] {
        [
            ("auto.create.topics.enable", String(autoCreateTopics)),
            ("broker.id", String(nodeId)),
            ("default.replication.factor", String(defaultReplicationFactor)),
            ("group.initial.rebalance.delay.ms", String(groupCoordinator.initialRebalanceDelayMs)),
            ("group.max.session.timeout.ms", String(groupCoordinator.sessionTimeoutMsMax)),
            ("group.min.session.timeout.ms", String(groupCoordinator.sessionTimeoutMsMin)),
            ("compression.type", topicDefaults.compression.rawValue),
            ("log.dirs", dataDirectory),
            ("log.flush.policy", flushPolicy == .fsync ? "fsync" : "none"),
            ("log.retention.bytes", String(topicDefaults.retentionBytes)),
            ("log.retention.check.interval.ms", String(retentionCheckIntervalMs)),
            ("log.retention.ms", String(topicDefaults.retentionMs)),
            ("log.segment.bytes", String(topicDefaults.segmentBytes)),
            ("message.max.bytes", String(topicDefaults.maxMessageBytes)),
            ("min.insync.replicas", "1"),
            ("num.partitions", String(defaultPartitions)),
            ("offsets.retention.minutes", String(groupCoordinator.offsetsRetentionMs / 60_000)),
            ("offsets.topic.num.partitions", String(OffsetsTopic.partitionCount)),
            ("socket.request.max.bytes", String(requestBytesMax)),
        ]
    }
}
