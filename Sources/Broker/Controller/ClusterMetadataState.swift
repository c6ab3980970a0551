/// The last leader a partition's Raft group reported to the controller.
public struct PartitionLeader: Hashable, Sendable {
    /// The leader's node id, -1 when none is known.
    public var leader: Int32
    /// The term it was elected in.
    public var term: Int64

    /// Describes a leader.
    public init(leader: Int32, term: Int64) {
        self.leader = leader
        self.term = term
    }
}

/// One topic as the cluster metadata holds it.
public struct TopicMetadata: Hashable, Sendable {
    /// The topic name.
    public var name: String
    /// `assignment[p]`: partition p's replicas (node ids), its preferred leader first.
    public var assignment: [[Int32]]
    /// The configs set for this topic (Kafka names); everything else follows the broker defaults.
    public var overrides: [String: String]
    /// Last reported leaders, by partition (absent: never reported).
    public var leaders: [Int32: PartitionLeader]
    /// Tells this topic from an earlier (deleted) one of the same name: the number of partitions created in the
    /// cluster before it, unique to each creation. Partition directories carry it.
    public var uid: Int64

    /// The number of partitions.
    public var partitionCount: Int32 { Int32(assignment.count) }

    /// Describes a topic.
    public init(
        name: String, assignment: [[Int32]], overrides: [String: String], leaders: [Int32: PartitionLeader] = [:],
        uid: Int64 = 0
    ) {
        self.name = name
        self.assignment = assignment
        self.overrides = overrides
        self.leaders = leaders
        self.uid = uid
    }
}

/// The cluster metadata: what every node knows after applying the controller's log in order.
///
/// A pure value: `apply` is a deterministic function of the state and the record, so replaying the same log
/// always rebuilds the same state. A record that does not fit the state (a second creation of a topic, a change
/// to an unknown topic, a leader of an older term) changes nothing: the controller validates commands before it
/// proposes them, so such a record can only come from a race its validation lost, and the first writer wins
/// everywhere alike.
public struct ClusterMetadataState: Hashable, Sendable {
    /// Registered nodes, by id.
    public private(set) var nodes: [Int32: NodeRegistration] = [:]
    /// Topics, by name.
    public private(set) var topics: [String: TopicMetadata] = [:]
    /// The first producer id of the next block to allocate.
    public private(set) var producerIdNextBlockStart: Int64 = 0
    /// How many partitions were ever created: where the next topic's round-robin assignment starts.
    public private(set) var partitionsCreatedCount: Int64 = 0

    /// The empty cluster.
    public init() {}

    /// The state after `record`.
    public func applying(_ record: MetadataRecord) -> ClusterMetadataState {
        var next = self
        next.apply(record)
        return next
    }

    /// The state after `records`, in order.
    public func applying(_ records: some Sequence<MetadataRecord>) -> ClusterMetadataState {
        var next = self
        for record in records { next.apply(record) }
        return next
    }

    /// Applies `records` in place, in order.
    public mutating func apply(_ records: some Sequence<MetadataRecord>) {
        for record in records { apply(record) }
    }

    /// Applies `record` in place.
    public mutating func apply(_ record: MetadataRecord) {
        switch record {
        case .nodeRegistered(let node):
            nodes[node.id] = node
        case .topicCreated(let name, let assignment, let overrides):
            guard topics[name] == nil else { return }
            topics[name] = TopicMetadata(
                name: name, assignment: assignment, overrides: overrides, uid: partitionsCreatedCount)
            partitionsCreatedCount += Int64(assignment.count)
        case .topicDeleted(let name):
            topics[name] = nil
        case .topicConfigChanged(let name, let overrides):
            topics[name]?.overrides = overrides
        case .partitionLeaderChanged(let topic, let partition, let leader, let term):
            guard let known = topics[topic], (0..<known.partitionCount).contains(partition) else { return }
            if let last = known.leaders[partition], last.term > term { return }
            topics[topic]?.leaders[partition] = PartitionLeader(leader: leader, term: term)
        case .producerIdBlockAllocated(let nextBlockStart):
            producerIdNextBlockStart = max(producerIdNextBlockStart, nextBlockStart)
        }
    }

    // MARK: Queries

    /// Registered node ids, ascending.
    public var nodeIds: [Int32] { nodes.keys.sorted() }

    /// Topic names, ascending.
    public var topicNames: [String] { topics.keys.sorted() }

    /// The topic named `name`, if it exists.
    public func topic(_ name: String) -> TopicMetadata? { topics[name] }

    /// The replicas of a partition, preferred leader first; nil for an unknown partition.
    public func replicas(topic: String, partition: Int32) -> [Int32]? {
        guard let known = topics[topic], partition >= 0, partition < known.partitionCount else { return nil }
        return known.assignment[Int(partition)]
    }

    /// The config overrides of a topic; nil for an unknown topic.
    public func overrides(of topic: String) -> [String: String]? { topics[topic]?.overrides }

    /// The last reported leader of a partition, or nil.
    public func leader(topic: String, partition: Int32) -> PartitionLeader? { topics[topic]?.leaders[partition] }

    /// Every partition that `node` holds a replica of, in topic then partition order.
    public func partitions(on node: Int32) -> [(topic: String, partition: Int32)] {
        topicNames.flatMap { name -> [(topic: String, partition: Int32)] in
            guard let known = topics[name] else { return [] }
            return known.assignment.indices.filter { known.assignment[$0].contains(node) }.map { (name, Int32($0)) }
        }
    }
}
