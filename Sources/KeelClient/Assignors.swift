// Client-side partition assignment: the group leader runs the assignor the group chose over
// every member's subscription. Both are Kafka's eager assignors, computed as Apache Kafka's
// `RangeAssignor` and `RoundRobinAssignor` compute them (without racks), so a group of KeelClient,
// Java and librdkafka consumers gets the same assignment whichever member leads.

/// One member as the assignor sees it.
public struct AssignorMember: Sendable, Equatable {
    /// The member id the coordinator gave it.
    public var memberId: String
    /// Its static instance id, if any.
    public var groupInstanceId: String?
    /// The topics it subscribes to.
    public var topics: [String]

    /// Creates a member.
    public init(memberId: String, groupInstanceId: String? = nil, topics: [String]) {
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.topics = topics
    }

    /// Kafka's member order (`AbstractPartitionAssignor.MemberInfo.compareTo`): static members
    /// first, by instance id, then dynamic members by member id.
    static func precedes(_ a: AssignorMember, _ b: AssignorMember) -> Bool {
        switch (a.groupInstanceId, b.groupInstanceId) {
        case (let x?, let y?): x == y ? javaStringOrder(a.memberId, b.memberId) : javaStringOrder(x, y)
        case (.some, .none): true
        case (.none, .some): false
        case (.none, .none): javaStringOrder(a.memberId, b.memberId)
        }
    }
}

/// A partition assignment strategy; its `protocolName` is what JoinGroup advertises.
public enum PartitionAssignor: String, Sendable, CaseIterable, CustomStringConvertible {
    /// Per topic, consecutive ranges of partitions to members in order; the first members get one
    /// extra when the count does not divide (Kafka's `RangeAssignor`, librdkafka's `range`).
    case range
    /// All partitions of all subscribed topics, in topic then partition order, dealt to the
    /// members in turn, skipping members not subscribed to the partition's topic (Kafka's
    /// `RoundRobinAssignor`, librdkafka's `roundrobin`).
    case roundRobin = "roundrobin"

    /// The protocol name in JoinGroup (`range`, `roundrobin`).
    public var protocolName: String { rawValue }

    /// `range` or `roundrobin`.
    public var description: String { rawValue }

    /// The assignor named `name` in a JoinGroup answer, if KeelClient has it.
    public init?(protocolName name: String) { self.init(rawValue: name) }

    /// Assigns the partitions of the topics in `partitionCounts` (topics missing from it, e.g.
    /// not created yet, get nothing) to `members`.
    ///
    /// - Returns: every member id, each with its partitions sorted by topic then partition.
    public func assign(members: [AssignorMember], partitionCounts: [String: Int32]) -> [String: [TopicPartition]] {
        var assignment: [String: [TopicPartition]] = [:]
        for member in members { assignment[member.memberId] = [] }
        let ordered = members.sorted(by: AssignorMember.precedes)
        switch self {
        case .range:
            var topics = Set<String>()
            for member in members { topics.formUnion(member.topics) }
            for topic in topics {
                guard let count = partitionCounts[topic], count > 0 else { continue }
                let consumers = ordered.filter { $0.topics.contains(topic) }
                let perConsumer = Int(count) / consumers.count
                let withExtra = Int(count) % consumers.count
                for (index, consumer) in consumers.enumerated() {
                    let start = perConsumer * index + min(index, withExtra)
                    let length = perConsumer + (index < withExtra ? 1 : 0)
                    for partition in start..<(start + length) {
                        assignment[consumer.memberId, default: []].append(
                            TopicPartition(topic: topic, partition: Int32(partition)))
                    }
                }
            }
        case .roundRobin:
            var topics = Set<String>()
            for member in members { topics.formUnion(member.topics) }
            guard !ordered.isEmpty else { return assignment }
            var next = 0
            for topic in topics.sorted(by: javaStringOrder) {
                guard let count = partitionCounts[topic], count > 0 else { continue }
                // Some member subscribes to every topic in the union, so each search ends.
                for partition in 0..<count {
                    while !ordered[next % ordered.count].topics.contains(topic) { next += 1 }
                    assignment[ordered[next % ordered.count].memberId, default: []].append(
                        TopicPartition(topic: topic, partition: partition))
                    next += 1
                }
            }
        }
        for (member, partitions) in assignment {
            assignment[member] = partitions.sorted {
                $0.topic == $1.topic ? $0.partition < $1.partition : javaStringOrder($0.topic, $1.topic)
            }
        }
        return assignment
    }
}
