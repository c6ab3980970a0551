import KafkaProtocol

/// One partition as Metadata describes it.
public struct PartitionInfo: Sendable, Equatable {
    /// The partition index.
    public var partition: Int32
    /// The leader's node id, -1 if none.
    public var leader: Int32
    /// Every replica's node id.
    public var replicas: [Int32]
    /// The in-sync replicas' node ids.
    public var isr: [Int32]
    /// The partition's error in the Metadata answer, usually NONE.
    public var error: ErrorCode

    /// Creates a value with every field given.
    public init(partition: Int32, leader: Int32, replicas: [Int32], isr: [Int32], error: ErrorCode = .none) {
        self.partition = partition
        self.leader = leader
        self.replicas = replicas
        self.isr = isr
        self.error = error
    }
}

/// One topic as Metadata describes it, partitions sorted by index.
public struct TopicInfo: Sendable, Equatable {
    /// The topic name.
    public var name: String
    /// Whether the topic is internal (e.g. `__consumer_offsets`).
    public var isInternal: Bool
    /// The partitions, sorted by index.
    public var partitions: [PartitionInfo]

    /// Creates a value with every field given.
    public init(name: String, isInternal: Bool, partitions: [PartitionInfo]) {
        self.name = name
        self.isInternal = isInternal
        self.partitions = partitions.sorted { $0.partition < $1.partition }
    }
}

/// The client's view of the cluster: brokers, the controller, and every topic it has asked about.
///
/// Refreshed from Metadata answers; entries age out only by being replaced, and a refresh is
/// triggered by errors that say the view is stale (NOT_LEADER_OR_FOLLOWER, ...).
public struct ClusterMetadata: Sendable, Equatable {
    /// Client addresses by node id.
    public var brokers: [Int32: BrokerAddress] = [:]
    /// The controller's node id, -1 if unknown.
    public var controllerId: Int32 = -1
    /// The cluster id, if the broker sent one.
    public var clusterId: String?
    /// Known topics by name.
    public var topics: [String: TopicInfo] = [:]

    /// An empty view.
    public init() {}

    /// Takes in a Metadata answer. With `replacingTopics`, topics not in the answer are forgotten
    /// (the answer listed all topics); otherwise only the topics in the answer change, and
    /// topics the answer says do not exist are removed.
    mutating func apply(_ response: MetadataResponse, replacingTopics: Bool) {
        var brokers: [Int32: BrokerAddress] = [:]
        for broker in response.brokers {
            brokers[broker.nodeId] = BrokerAddress(host: broker.host, port: Int(broker.port))
        }
        self.brokers = brokers
        controllerId = response.controllerId
        clusterId = response.clusterId
        if replacingTopics { topics = [:] }
        for topic in response.topics {
            guard topic.errorCode == .none || topic.errorCode == .leaderNotAvailable else {
                topics[topic.name] = nil
                continue
            }
            topics[topic.name] = TopicInfo(
                name: topic.name, isInternal: topic.isInternal,
                partitions: topic.partitions.map {
                    PartitionInfo(
                        partition: $0.partitionIndex, leader: $0.leaderId, replicas: $0.replicaNodes,
                        isr: $0.isrNodes, error: $0.errorCode)
                })
        }
    }

    /// The leader of `topic`-`partition`, if known and live.
    public func leader(topic: String, partition: Int32) -> Int32? {
        guard let info = topics[topic], let entry = info.partitions.first(where: { $0.partition == partition }),
            entry.leader >= 0
        else { return nil }
        return entry.leader
    }
}
