// Consumer-group administration on `KeelClient`: finding a group's coordinator, listing,
// describing and deleting groups, and reading or setting committed offsets from outside the
// group (what `keel group` and kafka-consumer-groups.sh do).

import KafkaProtocol
import NIOCore
import Records

/// A group as ListGroups names it.
public struct GroupListing: Sendable, Equatable {
    /// The group id.
    public var groupId: String
    /// The protocol type: `consumer` for consumer groups, empty for a group that only stores offsets.
    public var protocolType: String

    /// Creates a value with every field given.
    public init(groupId: String, protocolType: String) {
        self.groupId = groupId
        self.protocolType = protocolType
    }
}

/// One member as DescribeGroups shows it, with the consumer protocol bytes decoded.
public struct GroupMemberDescription: Sendable, Equatable {
    /// The member id.
    public var memberId: String
    /// The client id the member connected with.
    public var clientId: String
    /// The member's host as the coordinator saw it (e.g. `/127.0.0.1`).
    public var clientHost: String
    /// The subscription, when the group speaks the consumer protocol and it decodes.
    public var subscription: ConsumerProtocolSubscription?
    /// The assigned partitions (empty while rebalancing, or if the assignment does not decode).
    public var assignment: [TopicPartition]

    /// Creates a value with every field given.
    public init(
        memberId: String,
        clientId: String,
        clientHost: String,
        subscription: ConsumerProtocolSubscription?,
        assignment: [TopicPartition]
    ) {
        self.memberId = memberId
        self.clientId = clientId
        self.clientHost = clientHost
        self.subscription = subscription
        self.assignment = assignment
    }
}

/// A group as DescribeGroups shows it.
public struct GroupDescription: Sendable, Equatable {
    /// The group id.
    public var groupId: String
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable` or `Dead` (no such group).
    public var state: String
    /// The protocol type (`consumer`), empty for a group without members.
    public var protocolType: String
    /// The chosen protocol: for consumer groups the assignor (`range`, `roundrobin`).
    public var protocolName: String
    /// The members.
    public var members: [GroupMemberDescription]
    /// The coordinator's node id.
    public var coordinator: Int32

    /// Creates a value with every field given.
    public init(
        groupId: String,
        state: String,
        protocolType: String,
        protocolName: String,
        members: [GroupMemberDescription],
        coordinator: Int32
    ) {
        self.groupId = groupId
        self.state = state
        self.protocolType = protocolType
        self.protocolName = protocolName
        self.members = members
        self.coordinator = coordinator
    }
}

/// A group's coordinator, as FindCoordinator names it.
struct GroupCoordinator: Sendable, Equatable {
    var nodeId: Int32
    var address: BrokerAddress
}

extension KeelClient {
    /// Asks any broker which node coordinates `groupId` (FindCoordinator v1, key type 0); one
    /// attempt: COORDINATOR_NOT_AVAILABLE and friends are thrown as retriable `.broker` errors.
    func findCoordinator(group groupId: String) async throws(KeelClientError) -> GroupCoordinator {
        let connection = try await anyConnection()
        let response = try await connection.send(
            FindCoordinatorRequest(key: groupId, keyType: 0), timeoutMs: configuration.requestTimeoutMs)
        guard response.errorCode == .none else {
            throw .broker(response.errorCode, context: "find the coordinator of group '\(groupId)'")
        }
        guard (1...65535).contains(response.port), !response.host.isEmpty else {
            throw .protocolViolation("FindCoordinator named \(response.host):\(response.port)")
        }
        return GroupCoordinator(
            nodeId: response.nodeId, address: BrokerAddress(host: response.host, port: Int(response.port)))
    }

    /// Runs `body` on a connection to the coordinator of `groupId`, finding it again and retrying
    /// (with backoff) while the answer is retriable: NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE,
    /// COORDINATOR_LOAD_IN_PROGRESS, a lost connection.
    func withCoordinator<T: Sendable>(
        group groupId: String,
        _ body: @escaping (BrokerConnection, GroupCoordinator) async throws(KeelClientError) -> T
    ) async throws(KeelClientError) -> T {
        try await withRetries { () async throws(KeelClientError) -> T in
            let coordinator = try await self.findCoordinator(group: groupId)
            let connection = try await self.connection(to: coordinator.address)
            return try await body(connection, coordinator)
        }
    }

    /// Every group of the cluster, sorted by id: ListGroups v2 to every broker (each lists the
    /// groups it coordinates).
    public func listGroups() async throws(KeelClientError) -> [GroupListing] {
        let view = try await refreshMetadata(topics: [])
        var groups: [String: GroupListing] = [:]
        let addresses = view.brokers.sorted { $0.key < $1.key }.map(\.value)
        for address in addresses {
            let response = try await withRetries { () async throws(KeelClientError) -> ListGroupsResponse in
                let connection = try await self.connection(to: address)
                let answer = try await connection.send(
                    ListGroupsRequest(), timeoutMs: self.configuration.requestTimeoutMs)
                guard answer.errorCode == .none else {
                    throw .broker(answer.errorCode, context: "list groups on \(address)")
                }
                return answer
            }
            for group in response.groups {
                groups[group.groupId] = GroupListing(groupId: group.groupId, protocolType: group.protocolType)
            }
        }
        return groups.values.sorted { $0.groupId < $1.groupId }
    }

    /// The state, protocol and members of `groupId` (DescribeGroups v3 to its coordinator). A
    /// group that does not exist is described with state `Dead` and no members, as Kafka does.
    public func describeGroup(_ groupId: String) async throws(KeelClientError) -> GroupDescription {
        guard !groupId.isEmpty else { throw .invalidArgument("a group id must not be empty") }
        let timeoutMs = configuration.requestTimeoutMs
        return try await withCoordinator(group: groupId) {
            (connection, coordinator) async throws(KeelClientError) -> GroupDescription in
            let response = try await connection.send(
                DescribeGroupsRequest(groups: [groupId], includeAuthorizedOperations: false), timeoutMs: timeoutMs)
            guard let group = response.groups.first(where: { $0.groupId == groupId }) else {
                throw .protocolViolation("DescribeGroups answer does not mention '\(groupId)'")
            }
            guard group.errorCode == .none else {
                throw .broker(group.errorCode, context: "describe group '\(groupId)'")
            }
            let isConsumer = group.protocolType == "consumer"
            let members = group.members.map { member in
                GroupMemberDescription(
                    memberId: member.memberId, clientId: member.clientId, clientHost: member.clientHost,
                    subscription: isConsumer ? try? ConsumerProtocolSubscription.decode(member.memberMetadata) : nil,
                    assignment: isConsumer
                        ? (try? ConsumerProtocolAssignment.decode(member.memberAssignment))?.partitions ?? [] : [])
            }
            return GroupDescription(
                groupId: group.groupId, state: group.groupState, protocolType: group.protocolType,
                protocolName: group.protocolData, members: members, coordinator: coordinator.nodeId)
        }
    }

    /// Deletes `groupId` and its committed offsets (DeleteGroups v1 to its coordinator).
    ///
    /// Throws `.broker(NON_EMPTY_GROUP, …)` while the group has members and
    /// `.broker(GROUP_ID_NOT_FOUND, …)` if there is no such group.
    public func deleteGroup(_ groupId: String) async throws(KeelClientError) {
        guard !groupId.isEmpty else { throw .invalidArgument("a group id must not be empty") }
        let timeoutMs = configuration.requestTimeoutMs
        try await withCoordinator(group: groupId) { (connection, _) async throws(KeelClientError) -> Void in
            let response = try await connection.send(DeleteGroupsRequest(groupsNames: [groupId]), timeoutMs: timeoutMs)
            guard let result = response.results.first(where: { $0.groupId == groupId }) else {
                throw .protocolViolation("DeleteGroups answer does not mention '\(groupId)'")
            }
            guard result.errorCode == .none else {
                throw .broker(result.errorCode, context: "delete group '\(groupId)'")
            }
        }
    }

    /// The committed offsets of `groupId` (OffsetFetch v3): for `partitions`, or every partition
    /// the group has committed when nil. Partitions without a committed offset are left out.
    ///
    /// A committed offset is the next offset to read, as in Kafka.
    public func committedOffsets(
        group groupId: String,
        partitions: [TopicPartition]? = nil
    ) async throws(KeelClientError) -> [TopicPartition: Offset] {
        guard !groupId.isEmpty else { throw .invalidArgument("a group id must not be empty") }
        let timeoutMs = configuration.requestTimeoutMs
        return try await withCoordinator(group: groupId) {
            (connection, _) async throws(KeelClientError) -> [TopicPartition: Offset] in
            try await Self.fetchOffsets(group: groupId, partitions: partitions, on: connection, timeoutMs: timeoutMs)
        }
    }

    /// One OffsetFetch v3 on `connection`; group-level and partition-level errors are thrown.
    static func fetchOffsets(
        group groupId: String,
        partitions: [TopicPartition]?,
        on connection: BrokerConnection,
        timeoutMs: Int64
    ) async throws(KeelClientError) -> [TopicPartition: Offset] {
        let topics = partitions.map { list in
            Dictionary(grouping: list, by: \.topic).sorted { $0.key < $1.key }.map {
                OffsetFetchRequest.Topic(name: $0.key, partitionIndexes: $0.value.map(\.partition).sorted())
            }
        }
        let response = try await connection.send(
            OffsetFetchRequest(groupId: groupId, topics: topics), timeoutMs: timeoutMs)
        guard response.errorCode == .none else {
            throw .broker(response.errorCode, context: "fetch the offsets of group '\(groupId)'")
        }
        var result: [TopicPartition: Offset] = [:]
        for topic in response.topics {
            for partition in topic.partitions {
                guard partition.errorCode == .none else {
                    throw .broker(
                        partition.errorCode,
                        context: "fetch the offset of group '\(groupId)' for \(topic.name)-\(partition.partitionIndex)")
                }
                if partition.committedOffset >= 0 {
                    result[TopicPartition(topic: topic.name, partition: partition.partitionIndex)] = Offset(
                        partition.committedOffset)
                }
            }
        }
        return result
    }

    /// Commits `offsets` for `groupId` from outside the group (OffsetCommit v3 with generation -1
    /// and an empty member id). Kafka accepts this only while the group has no members (state
    /// Empty, or a group that does not exist yet); otherwise it answers UNKNOWN_MEMBER_ID or
    /// ILLEGAL_GENERATION, which is thrown.
    public func commitOffsets(group groupId: String, _ offsets: [TopicPartition: Offset]) async throws(KeelClientError)
    {
        guard !groupId.isEmpty else { throw .invalidArgument("a group id must not be empty") }
        guard !offsets.isEmpty else { return }
        let timeoutMs = configuration.requestTimeoutMs
        try await withCoordinator(group: groupId) { (connection, _) async throws(KeelClientError) -> Void in
            try await Self.sendCommit(
                group: groupId, generationId: -1, memberId: "", offsets: offsets, on: connection, timeoutMs: timeoutMs)
        }
    }

    /// One OffsetCommit v3 on `connection`; the first partition error is thrown.
    static func sendCommit(
        group groupId: String,
        generationId: Int32,
        memberId: String,
        offsets: [TopicPartition: Offset],
        on connection: BrokerConnection,
        timeoutMs: Int64
    ) async throws(KeelClientError) {
        let topics = Dictionary(grouping: offsets, by: \.key.topic).sorted { $0.key < $1.key }.map { topic, entries in
            OffsetCommitRequest.Topic(
                name: topic,
                partitions: entries.sorted { $0.key.partition < $1.key.partition }.map {
                    .init(partitionIndex: $0.key.partition, committedOffset: $0.value.value, committedMetadata: "")
                })
        }
        let response = try await connection.send(
            OffsetCommitRequest(
                groupId: groupId, generationId: generationId, memberId: memberId, retentionTimeMs: -1, topics: topics),
            timeoutMs: timeoutMs)
        for topic in response.topics {
            for partition in topic.partitions where partition.errorCode != .none {
                throw .broker(
                    partition.errorCode,
                    context: "commit the offset of group '\(groupId)' for \(topic.name)-\(partition.partitionIndex)")
            }
        }
    }
}
