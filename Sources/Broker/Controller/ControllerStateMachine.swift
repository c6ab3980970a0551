import KafkaProtocol

/// An admin change asked of the controller.
public enum ControllerCommand: Hashable, Sendable {
    /// CreateTopics: `partitions` or `replicationFactor` of -1 take the defaults.
    case createTopic(name: String, partitions: Int32, replicationFactor: Int16, configs: [String: String])
    /// CreateTopics with explicit replica assignments (`assignment[p]`: partition p's replicas, leader first).
    case createTopicWithAssignment(name: String, assignment: [[Int32]], configs: [String: String])
    /// DeleteTopics.
    case deleteTopic(name: String)
    /// AlterConfigs: the topic's overrides become `configs` (the whole set).
    case alterConfig(name: String, configs: [String: String])
    /// A node announces itself (idempotent: the same registration again changes nothing).
    case registerNode(NodeRegistration)
    /// Reserves the next block of producer ids, `size` ids long.
    case allocateProducerIdBlock(size: Int64)
    /// A partition's Raft group reports its leader (recorded only if it is news).
    case reportPartitionLeader(topic: String, partition: Int32, leader: Int32, term: Int64)
}

/// What a command achieved once its records are committed.
public enum ControllerReply: Hashable, Sendable {
    /// Done; nothing more to say.
    case done
    /// The topic exists now, with this assignment.
    case topicCreated(assignment: [[Int32]])
    /// These producer ids belong to the caller.
    case producerIdBlock(Range<Int64>)
}

/// Why the controller refused a command, with the Kafka error code to answer.
public enum ControllerError: Error, Hashable, Sendable {
    /// This node does not lead the controller group; `controller` is the leader it knows of (NOT_CONTROLLER).
    case notController(controller: Int32?)
    /// INVALID_TOPIC_EXCEPTION.
    case invalidTopic(String)
    /// TOPIC_ALREADY_EXISTS.
    case topicAlreadyExists(String)
    /// UNKNOWN_TOPIC_OR_PARTITION.
    case unknownTopic(String)
    /// INVALID_PARTITIONS.
    case invalidPartitions(String)
    /// INVALID_REPLICATION_FACTOR.
    case invalidReplicationFactor(String)
    /// INVALID_CONFIG.
    case invalidConfig(String)
    /// INVALID_REQUEST (a malformed command, e.g. a non-positive producer id block).
    case invalidRequest(String)
    /// The controller's replica failed (KAFKA_STORAGE_ERROR) or its log cannot be read (UNKNOWN_SERVER_ERROR).
    case failed(String)

    /// The Kafka error code to answer with.
    public var code: ErrorCode {
        switch self {
        case .notController: .notController
        case .invalidTopic: .invalidTopicException
        case .topicAlreadyExists: .topicAlreadyExists
        case .unknownTopic: .unknownTopicOrPartition
        case .invalidPartitions: .invalidPartitions
        case .invalidReplicationFactor: .invalidReplicationFactor
        case .invalidConfig: .invalidConfig
        case .invalidRequest: .invalidRequest
        case .failed: .unknownServerError
        }
    }

    /// The error message to answer with, if any.
    public var message: String? {
        switch self {
        case .notController(let controller): controller.map { "the controller is node \($0)" }
        case .invalidTopic(let m), .topicAlreadyExists(let m), .unknownTopic(let m), .invalidPartitions(let m),
            .invalidReplicationFactor(let m), .invalidConfig(let m), .invalidRequest(let m), .failed(let m):
            m
        }
    }
}

/// The controller's decisions as a pure function: a command and the current state in, the records to propose
/// (and the reply to give once they commit) out. It never changes the state itself: the records do, when they
/// are applied after commit, on every node alike.
public struct ControllerStateMachine: Sendable {
    /// The configuration of a topic that overrides nothing (validates overrides as the broker does).
    public var topicDefaults: TopicConfig
    /// Partitions of a topic created with -1 (`num.partitions`).
    public var defaultPartitions: Int32
    /// Replication factor of a topic created with -1 (`default.replication.factor`), capped at the node count.
    public var defaultReplicationFactor: Int16

    /// A state machine with these defaults.
    public init(
        topicDefaults: TopicConfig = TopicConfig(), defaultPartitions: Int32 = 1, defaultReplicationFactor: Int16 = 3
    ) {
        self.topicDefaults = topicDefaults
        self.defaultPartitions = defaultPartitions
        self.defaultReplicationFactor = defaultReplicationFactor
    }

    /// The metadata topic's name: its records live in group 0 and no client may create a topic of that name.
    public static let metadataTopic = "__cluster_metadata"

    /// The records that carry out `command` against `state`, and the reply once they commit; an empty record
    /// list means the command is already in effect.
    public func decide(_ command: ControllerCommand, in state: ClusterMetadataState)
        throws(ControllerError) -> (records: [MetadataRecord], reply: ControllerReply)
    {
        switch command {
        case .createTopic(let name, let partitions, let replicationFactor, let configs):
            let record = try createTopic(
                name: name, partitions: partitions, replicationFactor: replicationFactor, configs: configs,
                in: state)
            guard case .topicCreated(_, let assignment, _) = record else { preconditionFailure("not a creation") }
            return ([record], .topicCreated(assignment: assignment))
        case .createTopicWithAssignment(let name, let assignment, let configs):
            try checkNewTopic(name: name, partitions: Int32(clamping: assignment.count), in: state)
            let nodes = Set(state.nodeIds)
            for (p, replicas) in assignment.enumerated() {
                guard !replicas.isEmpty, Set(replicas).count == replicas.count,
                    replicas.count == assignment[0].count
                else {
                    throw .invalidReplicationFactor(
                        "partition \(p): replicas \(replicas) must be distinct, non-empty, and as many as partition 0's"
                    )
                }
                guard let unknown = replicas.first(where: { !nodes.contains($0) }) else { continue }
                throw .invalidReplicationFactor("partition \(p): node \(unknown) is not registered")
            }
            try validate(configs: configs)
            return (
                [.topicCreated(name: name, assignment: assignment, overrides: configs)],
                .topicCreated(assignment: assignment)
            )
        case .deleteTopic(let name):
            guard state.topic(name) != nil else { throw .unknownTopic("topic \(name) does not exist") }
            return ([.topicDeleted(name: name)], .done)
        case .alterConfig(let name, let configs):
            guard let topic = state.topic(name) else { throw .unknownTopic("topic \(name) does not exist") }
            try validate(configs: configs)
            if topic.overrides == configs { return ([], .done) }
            return ([.topicConfigChanged(name: name, overrides: configs)], .done)
        case .registerNode(let node):
            guard node.id >= 0 else { throw .invalidRequest("node id \(node.id) must be >= 0") }
            guard (0...65535).contains(node.clientPort), (0...65535).contains(node.clusterPort) else {
                throw .invalidRequest("node \(node.id): ports must be in 0...65535")
            }
            guard node.clientHost.utf8.count <= 255, node.clusterHost.utf8.count <= 255 else {
                throw .invalidRequest("node \(node.id): host names are limited to 255 bytes")
            }
            if state.nodes[node.id] == node { return ([], .done) }
            return ([.nodeRegistered(node)], .done)
        case .allocateProducerIdBlock(let size):
            let start = state.producerIdNextBlockStart
            guard size > 0, size <= 1 << 20, start <= Int64.max - size else {
                throw .invalidRequest("producer id block of \(size) ids cannot be allocated after \(start)")
            }
            return ([.producerIdBlockAllocated(nextBlockStart: start + size)], .producerIdBlock(start..<start + size))
        case .reportPartitionLeader(let topic, let partition, let leader, let term):
            guard let known = state.topic(topic), partition >= 0, partition < known.partitionCount else {
                throw .unknownTopic("partition \(topic)-\(partition) does not exist")
            }
            if let last = known.leaders[partition],
                last.term > term || last == PartitionLeader(leader: leader, term: term)
            {
                return ([], .done)
            }
            return ([.partitionLeaderChanged(topic: topic, partition: partition, leader: leader, term: term)], .done)
        }
    }

    func validate(configs: [String: String]) throws(ControllerError) {
        do throws(TopicConfigError) {
            _ = try topicDefaults.applying(configs)
        } catch {
            throw .invalidConfig(error.description)
        }
    }

    /// The checks of every creation: a legal, free name and a partition count in range.
    func checkNewTopic(name: String, partitions: Int32, in state: ClusterMetadataState) throws(ControllerError) {
        if let problem = Broker.topicNameProblem(name) { throw .invalidTopic(problem) }
        if name == Self.metadataTopic { throw .invalidTopic("topic \(name) is reserved for the controller") }
        guard state.topic(name) == nil else { throw .topicAlreadyExists("topic \(name) already exists") }
        guard partitions >= 1, partitions <= Broker.partitionsMax else {
            throw .invalidPartitions("number of partitions \(partitions) must be in 1...\(Broker.partitionsMax)")
        }
    }

    func createTopic(
        name: String, partitions: Int32, replicationFactor: Int16, configs: [String: String],
        in state: ClusterMetadataState
    ) throws(ControllerError) -> MetadataRecord {
        let partitions = partitions == -1 ? defaultPartitions : partitions
        try checkNewTopic(name: name, partitions: partitions, in: state)
        let nodes = state.nodeIds
        let factor =
            replicationFactor == -1
            ? Int(min(defaultReplicationFactor, Int16(clamping: nodes.count))) : Int(replicationFactor)
        guard factor >= 1 else {
            throw .invalidReplicationFactor("replication factor \(replicationFactor) must be at least 1")
        }
        guard factor <= nodes.count else {
            throw .invalidReplicationFactor(
                "replication factor \(factor) is larger than the \(nodes.count) registered node(s)")
        }
        try validate(configs: configs)
        let assignment = Self.assignReplicas(
            nodes: nodes, partitions: Int(partitions), replicationFactor: factor, cursor: state.partitionsCreatedCount)
        return .topicCreated(name: name, assignment: assignment, overrides: configs)
    }

    /// Round-robin replica assignment, as Kafka's `AdminUtils.assignReplicasToBrokers` without racks, with the
    /// random start replaced by `cursor` (partitions created so far) so that the choice is deterministic and
    /// successive topics continue the rotation.
    ///
    /// Partition p's leader is `nodes[(start + p) % n]`: leaders go round the nodes. Its followers are the next
    /// nodes after the leader, skipping `shift` of them, where the shift grows by one each time the leaders have
    /// gone round once, so that followers of a node's partitions spread over all other nodes too. Replicas of one
    /// partition are always distinct nodes.
    public static func assignReplicas(nodes: [Int32], partitions: Int, replicationFactor: Int, cursor: Int64)
        -> [[Int32]]
    {
        let n = nodes.count
        precondition(n > 0 && replicationFactor >= 1 && replicationFactor <= n, "assignment needs RF <= nodes")
        let cursor = Int(cursor % Int64(n * max(n - 1, 1)))
        let start = cursor % n
        var shift = n > 1 ? (cursor / n) % (n - 1) : 0
        var assignment: [[Int32]] = []
        assignment.reserveCapacity(partitions)
        for p in 0..<partitions {
            if p > 0 && (start + p) % n == start && n > 1 { shift = (shift + 1) % (n - 1) }
            let first = (start + p) % n
            var replicas = [nodes[first]]
            for j in 0..<(replicationFactor - 1) {
                replicas.append(nodes[(first + 1 + (shift + j) % (n - 1)) % n])
            }
            assignment.append(replicas)
        }
        return assignment
    }
}
