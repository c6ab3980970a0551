import KafkaProtocol
import NIOCore

/// The classic group coordinator of one `__consumer_offsets` partition, as a value: every event mutates it and
/// returns the `GroupEffects` the host must carry out. See the overview in ConsumerGroups.swift.
///
/// Member ids are `clientId-n` (or `clientId-seed-n` with a seed), n a counter: pass a seed that differs per
/// coordinator incarnation (e.g. node id and Raft term) so that ids stay unique across failovers; an id already
/// in the group is skipped in any case.
public struct GroupCoordinator: Sendable {
    /// Limits and timers.
    public let config: GroupCoordinatorConfig
    /// Whether the partition's records are still being replayed (every request gets COORDINATOR_LOAD_IN_PROGRESS).
    public private(set) var isLoading: Bool

    var groups: [String: Group] = [:]
    let memberIdSeed: String
    var memberIdCounter: UInt64 = 0
    /// When `tick` next looks for expired offsets (Kafka's `offsets.retention.check.interval.ms`).
    var nextOffsetExpiryMs: Milliseconds = Int64.min

    /// Creates a coordinator with no groups; `loading: true` for one that will replay its partition first.
    public init(
        config: GroupCoordinatorConfig = GroupCoordinatorConfig(), memberIdSeed: String = "", loading: Bool = false
    ) {
        self.config = config
        self.memberIdSeed = memberIdSeed
        self.isLoading = loading
    }

    /// The partition of `__consumer_offsets` that coordinates `groupId`: Kafka's
    /// `Utils.abs(groupId.hashCode) % partitionCount`, with Java's UTF-16 string hash, so groups land where
    /// Kafka would put them.
    public static func partition(for groupId: String, partitionCount: Int32) -> Int32 {
        precondition(partitionCount > 0, "partitionCount must be positive")
        var hash: Int32 = 0
        for unit in groupId.utf16 { hash = hash &* 31 &+ Int32(unit) }
        let positive = hash == Int32.min ? 0 : abs(hash)
        return positive % partitionCount
    }

    /// The state of a group, or nil when the coordinator does not know it.
    public func state(of groupId: String) -> GroupStateName? {
        groups[groupId]?.state.name
    }

    /// The ids of the groups this coordinator knows, sorted.
    public var groupIds: [String] { groups.keys.sorted() }

    // MARK: Helpers

    mutating func nextMemberId(clientId: String, in group: Group) -> String {
        while true {
            memberIdCounter += 1
            let id =
                memberIdSeed.isEmpty
                ? "\(clientId)-\(memberIdCounter)" : "\(clientId)-\(memberIdSeed)-\(memberIdCounter)"
            if group.memberIndex(id: id) == nil { return id }
        }
    }

    mutating func store(_ group: Group) {
        if case .dead = group.state {
            groups[group.id] = nil
        } else {
            groups[group.id] = group
        }
    }

    static func single(_ token: RequestToken, _ response: GroupResponse) -> GroupEffects {
        GroupEffects(replies: [GroupReply(token: token, response: response)])
    }

    // MARK: JoinGroup

    /// JoinGroup v5. The reply is usually parked until the join barrier completes (all known members rejoined,
    /// the rebalance timeout, or the initial delay); `clientId` and `clientHost` come from the request header
    /// and the connection.
    public mutating func join(
        _ token: RequestToken,
        _ request: JoinGroupRequest,
        clientId: String,
        clientHost: String,
        now: Milliseconds
    ) -> GroupEffects {
        func fail(_ code: ErrorCode) -> GroupEffects {
            Self.single(token, Group.joinError(code, memberId: request.memberId))
        }
        if isLoading { return fail(.coordinatorLoadInProgress) }
        if request.groupId.isEmpty { return fail(.invalidGroupId) }
        guard (config.sessionTimeoutMsMin...config.sessionTimeoutMsMax).contains(request.sessionTimeoutMs) else {
            return fail(.invalidSessionTimeout)
        }
        if !request.memberId.isEmpty && groups[request.groupId] == nil { return fail(.unknownMemberId) }
        var group = groups[request.groupId] ?? Group(id: request.groupId)
        if case .dead = group.state { return fail(.coordinatorNotAvailable) }
        guard group.supports(protocolType: request.protocolType, protocols: request.protocols) else {
            return fail(.inconsistentGroupProtocol)
        }
        // Kafka: a rebalance timeout of -1 (old clients) means the session timeout.
        let rebalanceTimeoutMs = request.rebalanceTimeoutMs > 0 ? request.rebalanceTimeoutMs : request.sessionTimeoutMs
        var effects = GroupEffects()

        if request.memberId.isEmpty {
            if let instanceId = request.groupInstanceId, let index = group.memberIndex(instanceId: instanceId) {
                let newId = nextMemberId(clientId: clientId, in: group)
                replaceStaticMember(
                    &group,
                    at: index,
                    newId: newId,
                    token: token,
                    request: request,
                    rebalanceTimeoutMs: rebalanceTimeoutMs,
                    clientId: clientId,
                    clientHost: clientHost,
                    now: now,
                    effects: &effects
                )
            } else {
                guard group.members.count < config.groupMembersMax else { return fail(.groupMaxSizeReached) }
                let member = Member(
                    id: nextMemberId(clientId: clientId, in: group),
                    instanceId: request.groupInstanceId,
                    clientId: clientId,
                    clientHost: clientHost,
                    rebalanceTimeoutMs: rebalanceTimeoutMs,
                    sessionTimeoutMs: request.sessionTimeoutMs,
                    protocols: request.protocols,
                    assignment: ByteBuffer(),
                    sessionDeadline: now + Int64(request.sessionTimeoutMs),
                    pendingJoin: token,
                    pendingSync: nil,
                    synced: false
                )
                if group.members.isEmpty { group.protocolType = request.protocolType }
                group.members.append(member)
                switch group.state {
                case .empty, .completingRebalance, .stable:
                    group.prepareRebalance(now: now, config: config, effects: &effects)
                case .preparingRebalance(var rebalance):
                    rebalance.initialDelay?.newMemberAdded = true
                    group.state = .preparingRebalance(rebalance)
                    group.maybeCompleteJoin(now: now, effects: &effects)
                case .dead:
                    preconditionFailure("a Dead group is never stored")
                }
            }
        } else {
            guard let index = group.memberIndex(id: request.memberId) else {
                let fenced = request.groupInstanceId.map { group.memberIndex(instanceId: $0) != nil } ?? false
                return fail(fenced ? .fencedInstanceId : .unknownMemberId)
            }
            if let instanceId = request.groupInstanceId, group.members[index].instanceId != instanceId {
                return fail(.fencedInstanceId)
            }
            rejoin(
                &group, at: index, token: token, request: request, rebalanceTimeoutMs: rebalanceTimeoutMs, now: now,
                effects: &effects)
        }
        store(group)
        return effects
    }

    /// A known member sends JoinGroup again.
    func rejoin(
        _ group: inout Group,
        at index: Int,
        token: RequestToken,
        request: JoinGroupRequest,
        rebalanceTimeoutMs: Int32,
        now: Milliseconds,
        effects: inout GroupEffects
    ) {
        let changed = group.members[index].protocols != request.protocols
        group.members[index].protocols = request.protocols
        group.members[index].rebalanceTimeoutMs = rebalanceTimeoutMs
        group.members[index].sessionTimeoutMs = request.sessionTimeoutMs
        group.members[index].sessionDeadline = now + Int64(request.sessionTimeoutMs)
        switch group.state {
        case .preparingRebalance:
            if let previous = group.members[index].pendingJoin {
                // A duplicate JoinGroup replaces the parked one (the client gave up on it).
                effects.reply(previous, Group.joinError(.rebalanceInProgress, memberId: request.memberId))
            }
            group.members[index].pendingJoin = token
            group.maybeCompleteJoin(now: now, effects: &effects)
        case .completingRebalance:
            if changed {
                group.members[index].pendingJoin = token
                group.prepareRebalance(now: now, config: config, effects: &effects)
            } else {
                // The member lost the JoinGroup response: send it again.
                let isLeader = group.members[index].id == group.leaderId
                effects.reply(token, .join(group.joinResponse(for: group.members[index], includeMembers: isLeader)))
            }
        case .stable:
            if changed || group.members[index].id == group.leaderId {
                group.members[index].pendingJoin = token
                group.prepareRebalance(now: now, config: config, effects: &effects)
            } else {
                effects.reply(token, .join(group.joinResponse(for: group.members[index], includeMembers: false)))
            }
        case .empty, .dead:
            effects.reply(token, Group.joinError(.unknownMemberId, memberId: request.memberId))
        }
    }

    /// KIP-345: a static member restarts (known instance id, empty member id). It takes a new member id and the
    /// old one is fenced; in Stable, if the protocol choice would not change, it gets the current generation back
    /// with no rebalance once the new member id is committed.
    mutating func replaceStaticMember(
        _ group: inout Group,
        at index: Int,
        newId: String,
        token: RequestToken,
        request: JoinGroupRequest,
        rebalanceTimeoutMs: Int32,
        clientId: String,
        clientHost: String,
        now: Milliseconds,
        effects: inout GroupEffects
    ) {
        let oldId = group.members[index].id
        if let parked = group.members[index].pendingJoin {
            effects.reply(parked, Group.joinError(.fencedInstanceId, memberId: oldId))
            group.members[index].pendingJoin = nil
        }
        if let parked = group.members[index].pendingSync {
            effects.reply(parked, Group.syncError(.fencedInstanceId))
            group.members[index].pendingSync = nil
        }
        group.members[index].id = newId
        group.members[index].clientId = clientId
        group.members[index].clientHost = clientHost
        group.members[index].rebalanceTimeoutMs = rebalanceTimeoutMs
        group.members[index].sessionTimeoutMs = request.sessionTimeoutMs
        group.members[index].sessionDeadline = now + Int64(request.sessionTimeoutMs)
        if group.leaderId == oldId { group.leaderId = newId }
        group.members[index].protocols = request.protocols

        switch group.state {
        case .stable:
            if group.selectProtocol() == group.protocolName {
                // As Kafka before KIP-814: the leader gets the member list (its new assignment is ignored, the
                // group being Stable); everyone gets the current generation once the new member id is committed.
                let isLeader = group.members[index].id == group.leaderId
                let response = group.joinResponse(for: group.members[index], includeMembers: isLeader)
                let reply = GroupReply(token: token, response: .join(response))
                effects.append(group.id, [group.metadataRecord], then: [reply])
            } else {
                group.members[index].pendingJoin = token
                group.prepareRebalance(now: now, config: config, effects: &effects)
            }
        case .completingRebalance:
            group.members[index].pendingJoin = token
            group.prepareRebalance(now: now, config: config, effects: &effects)
        case .preparingRebalance:
            group.members[index].pendingJoin = token
            group.maybeCompleteJoin(now: now, effects: &effects)
        case .empty, .dead:
            preconditionFailure("an Empty or Dead group has no members to replace")
        }
    }

    // MARK: SyncGroup

    /// SyncGroup v3. Followers are parked until the leader's SyncGroup; the leader's assignment is written as a
    /// group metadata record and every parked reply is released once it is committed.
    public mutating func sync(_ token: RequestToken, _ request: SyncGroupRequest, now: Milliseconds) -> GroupEffects {
        func fail(_ code: ErrorCode) -> GroupEffects { Self.single(token, Group.syncError(code)) }
        if isLoading { return fail(.coordinatorLoadInProgress) }
        guard var group = groups[request.groupId] else { return fail(.unknownMemberId) }
        guard let index = group.memberIndex(id: request.memberId) else {
            let fenced = request.groupInstanceId.map { group.memberIndex(instanceId: $0) != nil } ?? false
            return fail(fenced ? .fencedInstanceId : .unknownMemberId)
        }
        if let instanceId = request.groupInstanceId, group.members[index].instanceId != instanceId {
            return fail(.fencedInstanceId)
        }
        // Kafka's order: member, then generation, then state.
        guard request.generationId == group.generation else { return fail(.illegalGeneration) }
        var effects = GroupEffects()
        switch group.state {
        case .empty, .dead:
            return fail(.unknownMemberId)
        case .preparingRebalance:
            return fail(.rebalanceInProgress)
        case .completingRebalance(let syncDeadline):
            if let previous = group.members[index].pendingSync {
                effects.reply(previous, Group.syncError(.rebalanceInProgress))
            }
            group.members[index].pendingSync = token
            group.members[index].synced = true
            group.members[index].sessionDeadline = now + Int64(group.members[index].sessionTimeoutMs)
            if request.memberId == group.leaderId {
                for member in group.members.indices {
                    let id = group.members[member].id
                    group.members[member].assignment =
                        request.assignments.first { $0.memberId == id }?.assignment ?? ByteBuffer()
                }
                let allSynced = group.members.allSatisfy(\.synced)
                group.state = .stable(syncDeadline: allSynced ? nil : syncDeadline)
                group.stateSince = now
                var replies: [GroupReply] = []
                for member in group.members.indices {
                    guard let parked = group.members[member].pendingSync else { continue }
                    group.members[member].pendingSync = nil
                    let response = SyncGroupResponse(assignment: group.members[member].assignment)
                    replies.append(GroupReply(token: parked, response: .sync(response)))
                }
                effects.append(group.id, [group.metadataRecord], then: replies)
            }
        case .stable(let syncDeadline):
            group.members[index].synced = true
            group.members[index].sessionDeadline = now + Int64(group.members[index].sessionTimeoutMs)
            if syncDeadline != nil && group.members.allSatisfy(\.synced) { group.state = .stable(syncDeadline: nil) }
            effects.reply(token, .sync(SyncGroupResponse(assignment: group.members[index].assignment)))
        }
        store(group)
        return effects
    }

    // MARK: Heartbeat and LeaveGroup

    /// Heartbeat v1: resets the member's session timer; REBALANCE_IN_PROGRESS tells it to rejoin.
    public mutating func heartbeat(_ token: RequestToken, _ request: HeartbeatRequest, now: Milliseconds)
        -> GroupEffects
    {
        func answer(_ code: ErrorCode) -> GroupEffects {
            Self.single(token, .heartbeat(HeartbeatResponse(errorCode: code)))
        }
        if isLoading { return answer(.coordinatorLoadInProgress) }
        guard var group = groups[request.groupId], let index = group.memberIndex(id: request.memberId) else {
            return answer(.unknownMemberId)
        }
        // Kafka's order: member, then generation, then state.
        guard request.generationId == group.generation else { return answer(.illegalGeneration) }
        let code: ErrorCode
        switch group.state {
        case .empty, .dead:
            code = .unknownMemberId
        case .preparingRebalance:
            code = .rebalanceInProgress
        case .completingRebalance, .stable:
            // Kafka answers NONE in CompletingRebalance too: clients heartbeat while their SyncGroup is parked.
            code = .none
        }
        if code == .none || code == .rebalanceInProgress {
            group.members[index].sessionDeadline = now + Int64(group.members[index].sessionTimeoutMs)
            store(group)
        }
        return answer(code)
    }

    /// LeaveGroup v1: removes the member at once and rebalances the rest.
    public mutating func leave(_ token: RequestToken, _ request: LeaveGroupRequest, now: Milliseconds) -> GroupEffects {
        func answer(_ code: ErrorCode) -> GroupEffects {
            Self.single(token, .leave(LeaveGroupResponse(errorCode: code)))
        }
        if isLoading { return answer(.coordinatorLoadInProgress) }
        guard var group = groups[request.groupId], group.memberIndex(id: request.memberId) != nil else {
            return answer(.unknownMemberId)
        }
        var effects = GroupEffects()
        group.removeMembers(where: { $0.id == request.memberId }, now: now, config: config, effects: &effects)
        effects.reply(token, .leave(LeaveGroupResponse()))
        store(group)
        return effects
    }

    // MARK: Offsets

    /// OffsetCommit v3 (validation as Kafka's `ClassicGroup.validateOffsetCommit`). Accepted offsets are
    /// records; the response waits for their commit. `retention_time_ms` is ignored: offsets expire only by
    /// `offsetsRetentionMs` once the group is Empty (Kafka ≥ 2.1 behaviour for group-managed consumers).
    public mutating func offsetCommit(_ token: RequestToken, _ request: OffsetCommitRequest, now: Milliseconds)
        -> GroupEffects
    {
        func answer(_ code: (OffsetCommitRequest.Topic.Partition) -> ErrorCode) -> OffsetCommitResponse {
            OffsetCommitResponse(
                topics: request.topics.map { topic in
                    OffsetCommitResponse.Topic(
                        name: topic.name,
                        partitions: topic.partitions.map {
                            OffsetCommitResponse.Topic.Partition(partitionIndex: $0.partitionIndex, errorCode: code($0))
                        }
                    )
                }
            )
        }
        func fail(_ code: ErrorCode) -> GroupEffects { Self.single(token, .offsetCommit(answer { _ in code })) }
        if isLoading { return fail(.coordinatorLoadInProgress) }
        if request.groupId.isEmpty { return fail(.invalidGroupId) }
        let standalone = request.generationId < 0 && request.memberId.isEmpty
        var group: Group
        if let existing = groups[request.groupId] {
            group = existing
        } else if request.generationId < 0 {
            // Not managed by this coordinator (e.g. assign() consumers, admin tools): the group comes into being.
            group = Group(id: request.groupId)
            group.stateSince = now
        } else {
            return fail(.illegalGeneration)
        }
        if let code = validateCommit(group: group, request: request, standalone: standalone) { return fail(code) }

        func refusal(_ partition: OffsetCommitRequest.Topic.Partition) -> ErrorCode {
            if partition.partitionIndex < 0 { return .unknownTopicOrPartition }
            if (partition.committedMetadata?.utf8.count ?? 0) > config.offsetMetadataBytesMax {
                return .offsetMetadataTooLarge
            }
            return .none
        }
        var records: [GroupRecord] = []
        let response = answer(refusal)
        for topic in request.topics {
            for partition in topic.partitions where refusal(partition) == .none {
                let key = TopicPartition(topic: topic.name, partition: partition.partitionIndex)
                let committed = CommittedOffset(
                    offset: partition.committedOffset,
                    metadata: partition.committedMetadata ?? "",
                    commitTimestampMs: now
                )
                group.offsets[key] = committed
                records.append(GroupRecord(.offsetCommit(group: group.id, key, committed)))
            }
        }
        if records.isEmpty && groups[group.id] == nil {
            // Nothing was accepted: a standalone commit does not bring a group into being for nothing.
            return Self.single(token, .offsetCommit(response))
        }
        if let index = group.memberIndex(id: request.memberId) {
            group.members[index].sessionDeadline = now + Int64(group.members[index].sessionTimeoutMs)
        }
        store(group)
        var effects = GroupEffects()
        if records.isEmpty {
            effects.reply(token, .offsetCommit(response))
        } else {
            effects.append(group.id, records, then: [GroupReply(token: token, response: .offsetCommit(response))])
        }
        return effects
    }

    func validateCommit(group: Group, request: OffsetCommitRequest, standalone: Bool) -> ErrorCode? {
        if case .dead = group.state { return .unknownMemberId }
        if request.generationId < 0, case .empty = group.state { return nil }
        if !standalone {
            guard group.memberIndex(id: request.memberId) != nil else { return .unknownMemberId }
            guard request.generationId == group.generation else { return .illegalGeneration }
        } else if case .empty = group.state {
            return nil
        } else {
            return .unknownMemberId
        }
        if case .completingRebalance = group.state { return .rebalanceInProgress }
        return nil
    }

    /// OffsetFetch v3: the committed offsets of the partitions asked for (all when `topics` is nil); -1 and
    /// metadata "" for a partition with none.
    public func offsetFetch(_ token: RequestToken, _ request: OffsetFetchRequest) -> GroupEffects {
        if isLoading {
            return Self.single(
                token, .offsetFetch(OffsetFetchResponse(topics: [], errorCode: .coordinatorLoadInProgress)))
        }
        let offsets = groups[request.groupId]?.offsets ?? [:]
        func entry(_ key: TopicPartition) -> OffsetFetchResponse.Topic.Partition {
            let committed = offsets[key]
            return OffsetFetchResponse.Topic.Partition(
                partitionIndex: key.partition,
                committedOffset: committed?.offset ?? -1,
                metadata: committed?.metadata ?? ""
            )
        }
        var topics: [OffsetFetchResponse.Topic] = []
        if let asked = request.topics {
            topics = asked.map { topic in
                OffsetFetchResponse.Topic(
                    name: topic.name,
                    partitions: topic.partitionIndexes.map { entry(TopicPartition(topic: topic.name, partition: $0)) }
                )
            }
        } else {
            for key in offsets.keys.sorted() {
                if topics.last?.name != key.topic {
                    topics.append(OffsetFetchResponse.Topic(name: key.topic, partitions: []))
                }
                topics[topics.count - 1].partitions.append(entry(key))
            }
        }
        return Self.single(token, .offsetFetch(OffsetFetchResponse(topics: topics)))
    }

    // MARK: DescribeGroups and ListGroups

    /// DescribeGroups v3: an unknown group is described as Dead with no error, as Kafka does. Member metadata,
    /// assignments and the protocol are shown only when Stable (Kafka's `ClassicGroup.summary`).
    public func describe(_ token: RequestToken, _ request: DescribeGroupsRequest) -> GroupEffects {
        let described = request.groups.map { groupId -> DescribeGroupsResponse.Group in
            if isLoading {
                return DescribeGroupsResponse.Group(
                    errorCode: .coordinatorLoadInProgress,
                    groupId: groupId,
                    groupState: "",
                    protocolType: "",
                    protocolData: "",
                    members: [],
                    authorizedOperations: Int32.min
                )
            }
            guard let group = groups[groupId] else {
                return DescribeGroupsResponse.Group(
                    groupId: groupId,
                    groupState: GroupStateName.dead.rawValue,
                    protocolType: "",
                    protocolData: "",
                    members: [],
                    authorizedOperations: Int32.min
                )
            }
            let stable: Bool
            if case .stable = group.state { stable = true } else { stable = false }
            return DescribeGroupsResponse.Group(
                groupId: groupId,
                groupState: group.state.name.rawValue,
                protocolType: group.protocolType ?? "",
                protocolData: stable ? group.protocolName ?? "" : "",
                members: group.members.map {
                    DescribeGroupsResponse.Group.Member(
                        memberId: $0.id,
                        clientId: $0.clientId,
                        clientHost: $0.clientHost,
                        memberMetadata: stable ? $0.metadata(for: group.protocolName) : ByteBuffer(),
                        memberAssignment: stable ? $0.assignment : ByteBuffer()
                    )
                },
                authorizedOperations: Int32.min
            )
        }
        return Self.single(token, .describe(DescribeGroupsResponse(groups: described)))
    }

    /// ListGroups v2: every group this coordinator knows, sorted by id.
    public func list(_ token: RequestToken, _ request: ListGroupsRequest) -> GroupEffects {
        if isLoading {
            return Self.single(token, .list(ListGroupsResponse(errorCode: .coordinatorLoadInProgress, groups: [])))
        }
        let listed = groupIds.compactMap { id in
            groups[id].map { ListGroupsResponse.Group(groupId: id, protocolType: $0.protocolType ?? "") }
        }
        return Self.single(token, .list(ListGroupsResponse(groups: listed)))
    }

    // MARK: Deleting groups

    /// Deletes Empty groups (Kafka's DeleteGroups, for `keel group delete`): tombstones for every offset and for
    /// the group metadata, answered once committed; the group is Dead and forgotten at once.
    public mutating func deleteGroups(_ token: RequestToken, _ groupIds: [String]) -> GroupEffects {
        var outcomes: [DeletedGroup] = []
        var effects = GroupEffects()
        for groupId in groupIds {
            let code: ErrorCode
            if isLoading {
                code = .coordinatorLoadInProgress
            } else if groupId.isEmpty {
                code = .invalidGroupId
            } else if var group = groups[groupId] {
                switch group.state {
                case .empty:
                    var records = group.offsets.keys.sorted().map {
                        GroupRecord(.offsetCommit(group: groupId, $0, nil))
                    }
                    records.append(GroupRecord(.groupMetadata(group: groupId, nil)))
                    effects.append(groupId, records)
                    group.state = .dead
                    store(group)
                    code = .none
                case .preparingRebalance, .completingRebalance, .stable:
                    code = .nonEmptyGroup
                case .dead:
                    code = .groupIdNotFound
                }
            } else {
                code = .groupIdNotFound
            }
            outcomes.append(DeletedGroup(groupId: groupId, errorCode: code))
        }
        let reply = GroupReply(token: token, response: .deleteGroups(outcomes))
        if effects.appends.isEmpty {
            effects.replies.append(reply)
        } else {
            // Appends commit in log order: the last one's commit covers them all.
            effects.appends[effects.appends.count - 1].repliesOnCommit.append(reply)
        }
        return effects
    }

    // MARK: Timers

    /// Fires every timer due at `now`: session expiry, the end of the join barrier (rebalance timeout or initial
    /// delay), the pending-sync timeout, and (every `offsetsRetentionCheckIntervalMs`) offset expiry.
    public mutating func tick(now: Milliseconds) -> GroupEffects {
        var effects = GroupEffects()
        if isLoading { return effects }
        let sweep = now >= nextOffsetExpiryMs
        if sweep { nextOffsetExpiryMs = now + config.offsetsRetentionCheckIntervalMs }
        for id in groupIds {
            guard var group = groups[id] else { continue }
            group.tick(now: now, config: config, effects: &effects)
            if sweep { group.expireOffsets(now: now, config: config, effects: &effects) }
            store(group)
        }
        return effects
    }

    // MARK: Loading

    /// Replays records of the partition, in log order (call repeatedly, batch by batch). Throws on a record
    /// that is not a group record; the host decides whether to skip it (Kafka logs and skips unknown keys).
    public mutating func load(_ records: [GroupRecord]) throws(GroupRecordError) {
        for record in records {
            switch try record.decode() {
            case .offsetCommit(let groupId, let key, let committed):
                var group = groups[groupId] ?? Group(id: groupId)
                group.offsets[key] = committed
                groups[groupId] = group
            case .groupMetadata(let groupId, let metadata?):
                var group = groups[groupId] ?? Group(id: groupId)
                group.restore(metadata)
                groups[groupId] = group
            case .groupMetadata(let groupId, nil):
                // Deleted: whatever offsets follow in the log bring it back as an Empty group.
                if let offsets = groups[groupId]?.offsets, !offsets.isEmpty {
                    var group = Group(id: groupId)
                    group.offsets = offsets
                    groups[groupId] = group
                } else {
                    groups[groupId] = nil
                }
            }
        }
    }

    /// Ends loading: groups with members are Stable with fresh session timers (members must heartbeat or
    /// rejoin within their session timeout, as after a Kafka coordinator failover), the others Empty.
    public mutating func finishLoading(now: Milliseconds) {
        isLoading = false
        nextOffsetExpiryMs = now + config.offsetsRetentionCheckIntervalMs
        for id in groupIds {
            guard var group = groups[id] else { continue }
            for index in group.members.indices {
                group.members[index].sessionDeadline = now + Int64(group.members[index].sessionTimeoutMs)
            }
            groups[id] = group
        }
    }
}

extension Group {
    /// Takes generation, protocol, leader and members from a group metadata record.
    mutating func restore(_ metadata: StoredGroupMetadata) {
        generation = metadata.generation
        protocolType = metadata.protocolType.isEmpty ? nil : metadata.protocolType
        protocolName = metadata.protocolName
        leaderId = metadata.leader
        stateSince = metadata.currentStateTimestampMs < 0 ? Int64.min : metadata.currentStateTimestampMs
        members = metadata.members.map {
            Member(
                id: $0.memberId,
                instanceId: $0.groupInstanceId,
                clientId: $0.clientId,
                clientHost: $0.clientHost,
                rebalanceTimeoutMs: $0.rebalanceTimeoutMs,
                sessionTimeoutMs: $0.sessionTimeoutMs,
                protocols: [
                    JoinGroupRequest.SupportedProtocol(name: metadata.protocolName ?? "", metadata: $0.subscription)
                ],
                assignment: $0.assignment,
                sessionDeadline: Int64.max,
                pendingJoin: nil,
                pendingSync: nil,
                synced: true
            )
        }
        state = members.isEmpty ? .empty : .stable(syncDeadline: nil)
    }
}
