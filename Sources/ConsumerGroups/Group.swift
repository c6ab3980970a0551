import KafkaProtocol
import NIOCore

/// One member as the coordinator tracks it.
struct Member: Sendable {
    var id: String
    var instanceId: String?
    var clientId: String
    var clientHost: String
    var rebalanceTimeoutMs: Int32
    var sessionTimeoutMs: Int32
    /// The protocols the member supports, most preferred first (after a load: only the chosen one).
    var protocols: [JoinGroupRequest.SupportedProtocol]
    var assignment: ByteBuffer
    /// The session timer: the member is removed when `now` reaches it, unless a JoinGroup or SyncGroup of
    /// its is parked (a parked member is alive by definition, as in Kafka).
    var sessionDeadline: Milliseconds
    /// The parked JoinGroup of this member, answered when the join completes.
    var pendingJoin: RequestToken?
    /// The parked SyncGroup of this member, answered when the leader's assignment is committed.
    var pendingSync: RequestToken?
    /// Whether the member sent SyncGroup in the current generation (pending-sync timer).
    var synced: Bool

    func metadata(for protocolName: String?) -> ByteBuffer {
        protocols.first { $0.name == protocolName }?.metadata ?? ByteBuffer()
    }
}

/// The timer of a PreparingRebalance group.
struct Rebalance: Sendable {
    /// When the join completes whoever has rejoined (rebalance timeout, or end of the initial delay).
    var deadline: Milliseconds
    /// Set while the initial rebalance delay of a group started from Empty runs.
    var initialDelay: InitialDelay?
}

/// Kafka's `InitialDelayedJoin`: the delay is extended while new members keep arriving, bounded by the
/// rebalance timeout (`remainingMs`).
struct InitialDelay: Sendable {
    var remainingMs: Int64
    var newMemberAdded: Bool
}

/// A group's state with the data that only exists in that state.
enum GroupState: Sendable {
    case empty
    case preparingRebalance(Rebalance)
    /// Waiting for the leader's SyncGroup; members that have not synced by `syncDeadline` are removed.
    case completingRebalance(syncDeadline: Milliseconds)
    /// Assignment settled; `syncDeadline` is set while some member has not fetched its assignment yet.
    case stable(syncDeadline: Milliseconds?)
    case dead

    var name: GroupStateName {
        switch self {
        case .empty: .empty
        case .preparingRebalance: .preparingRebalance
        case .completingRebalance: .completingRebalance
        case .stable: .stable
        case .dead: .dead
        }
    }
}

/// One group: membership, generation, assignment and committed offsets.
struct Group: Sendable {
    let id: String
    var state: GroupState = .empty
    var generation: Int32 = 0
    var protocolType: String?
    var protocolName: String?
    var leaderId: String?
    /// Members in join order (the first joiner leads when the leader is gone).
    var members: [Member] = []
    var offsets: [TopicPartition: CommittedOffset] = [:]
    /// When the group entered its current state (offsets of an Empty group expire from here);
    /// `Int64.min` when unknown (a group known only from offset commits).
    var stateSince: Milliseconds = Int64.min

    init(id: String) {
        self.id = id
    }

    func memberIndex(id memberId: String) -> Int? {
        members.firstIndex { $0.id == memberId }
    }

    func memberIndex(instanceId: String) -> Int? {
        members.firstIndex { $0.instanceId == instanceId }
    }

    /// The group rebalance timeout: the largest of the members' (Kafka's `rebalanceTimeoutMs`).
    var rebalanceTimeoutMs: Int64 {
        Int64(members.map(\.rebalanceTimeoutMs).max() ?? 0)
    }

    // MARK: Protocol selection

    /// Protocols every member supports, in the first member's order of preference.
    var candidateProtocols: [String] {
        guard let first = members.first else { return [] }
        return first.protocols.map(\.name).filter { name in
            members.allSatisfy { member in member.protocols.contains { $0.name == name } }
        }
    }

    /// Whether a member with these protocols may join (Kafka's `supportsProtocols`).
    func supports(protocolType: String, protocols: [JoinGroupRequest.SupportedProtocol]) -> Bool {
        if protocolType.isEmpty || protocols.isEmpty { return false }
        if members.isEmpty { return true }
        guard protocolType == self.protocolType else { return false }
        let candidates = candidateProtocols
        return protocols.contains { candidates.contains($0.name) }
    }

    /// The vote: each member votes for its most preferred protocol that all support; most votes wins,
    /// ties go to the first member's preference (deterministic, unlike Kafka's hash-map order).
    func selectProtocol() -> String? {
        let candidates = candidateProtocols
        var votes: [String: Int] = [:]
        for member in members {
            if let choice = member.protocols.first(where: { candidates.contains($0.name) }) {
                votes[choice.name, default: 0] += 1
            }
        }
        var best: String?
        for name in candidates where best == nil || votes[name, default: 0] > votes[best ?? "", default: 0] {
            best = name
        }
        return best
    }

    // MARK: Responses and records

    func joinResponse(for member: Member, includeMembers: Bool) -> JoinGroupResponse {
        JoinGroupResponse(
            generationId: generation,
            protocolName: protocolName ?? "",
            leader: leaderId ?? "",
            memberId: member.id,
            members: includeMembers
                ? members.map {
                    JoinGroupResponse.Member(
                        memberId: $0.id,
                        groupInstanceId: $0.instanceId,
                        metadata: $0.metadata(for: protocolName)
                    )
                }
                : []
        )
    }

    static func joinError(_ code: ErrorCode, memberId: String) -> GroupResponse {
        .join(
            JoinGroupResponse(
                errorCode: code,
                generationId: -1,
                protocolName: "",
                leader: "",
                memberId: memberId,
                members: []
            )
        )
    }

    static func syncError(_ code: ErrorCode) -> GroupResponse {
        .sync(SyncGroupResponse(errorCode: code, assignment: ByteBuffer()))
    }

    var storedMetadata: StoredGroupMetadata {
        StoredGroupMetadata(
            protocolType: protocolType ?? "",
            generation: generation,
            protocolName: protocolName,
            leader: leaderId,
            currentStateTimestampMs: stateSince == Int64.min ? -1 : stateSince,
            members: members.map {
                StoredMember(
                    memberId: $0.id,
                    groupInstanceId: $0.instanceId,
                    clientId: $0.clientId,
                    clientHost: $0.clientHost,
                    rebalanceTimeoutMs: $0.rebalanceTimeoutMs,
                    sessionTimeoutMs: $0.sessionTimeoutMs,
                    subscription: $0.metadata(for: protocolName),
                    assignment: $0.assignment
                )
            }
        )
    }

    var metadataRecord: GroupRecord {
        GroupRecord(.groupMetadata(group: id, storedMetadata))
    }

    // MARK: Transitions

    /// Starts a rebalance (Stable, CompletingRebalance or Empty → PreparingRebalance).
    mutating func prepareRebalance(now: Milliseconds, config: GroupCoordinatorConfig, effects: inout GroupEffects) {
        if case .completingRebalance = state {
            // The assignment being synced is void: parked followers must rejoin.
            for index in members.indices {
                if let token = members[index].pendingSync {
                    effects.reply(token, Group.syncError(.rebalanceInProgress))
                    members[index].pendingSync = nil
                }
            }
        }
        let timeout = rebalanceTimeoutMs
        if case .empty = state {
            let delay = min(config.initialRebalanceDelayMs, timeout)
            state = .preparingRebalance(
                Rebalance(
                    deadline: now + delay,
                    initialDelay: InitialDelay(remainingMs: max(timeout - delay, 0), newMemberAdded: false)
                )
            )
            stateSince = now
        } else {
            state = .preparingRebalance(Rebalance(deadline: now + timeout, initialDelay: nil))
            stateSince = now
            maybeCompleteJoin(now: now, effects: &effects)
        }
    }

    /// Completes the join once every member has rejoined (never during the initial delay).
    mutating func maybeCompleteJoin(now: Milliseconds, effects: inout GroupEffects) {
        guard case .preparingRebalance(let rebalance) = state, rebalance.initialDelay == nil else { return }
        if members.allSatisfy({ $0.pendingJoin != nil }) {
            completeJoin(now: now, effects: &effects)
        }
    }

    /// Ends the join barrier: drops dynamic members that did not rejoin, starts the next generation and
    /// releases every parked JoinGroup (only the leader gets the member list).
    mutating func completeJoin(now: Milliseconds, effects: inout GroupEffects) {
        members.removeAll { $0.pendingJoin == nil && $0.instanceId == nil }
        generation += 1
        stateSince = now
        if !members.contains(where: { $0.pendingJoin != nil }) {
            // Nobody rejoined: static members that stayed silent have no leader to assign to them either.
            members.removeAll()
            protocolName = nil
            leaderId = nil
            state = .empty
            effects.append(id, [metadataRecord])
            return
        }
        protocolName = selectProtocol()
        if leaderId.flatMap({ memberIndex(id: $0) }).map({ members[$0].pendingJoin == nil }) ?? true {
            leaderId = members.first { $0.pendingJoin != nil }?.id
        }
        state = .completingRebalance(syncDeadline: now + rebalanceTimeoutMs)
        for index in members.indices {
            members[index].synced = false
            guard let token = members[index].pendingJoin else { continue }
            members[index].pendingJoin = nil
            members[index].sessionDeadline = now + Int64(members[index].sessionTimeoutMs)
            let isLeader = members[index].id == leaderId
            effects.reply(token, .join(joinResponse(for: members[index], includeMembers: isLeader)))
        }
    }

    /// Removes members (session expiry, pending-sync expiry, LeaveGroup) and moves the group on.
    mutating func removeMembers(
        where shouldRemove: (Member) -> Bool,
        now: Milliseconds,
        config: GroupCoordinatorConfig,
        effects: inout GroupEffects
    ) {
        let removed = members.filter(shouldRemove)
        guard !removed.isEmpty else { return }
        members.removeAll(where: shouldRemove)
        for member in removed {
            if let token = member.pendingJoin {
                effects.reply(token, Group.joinError(.unknownMemberId, memberId: member.id))
            }
            if let token = member.pendingSync {
                effects.reply(token, Group.syncError(.unknownMemberId))
            }
            if member.id == leaderId { leaderId = nil }
        }
        switch state {
        case .stable, .completingRebalance:
            prepareRebalance(now: now, config: config, effects: &effects)
        case .preparingRebalance:
            maybeCompleteJoin(now: now, effects: &effects)
        case .empty, .dead:
            break
        }
    }

    /// Fires whatever timers have come due at `now`.
    mutating func tick(now: Milliseconds, config: GroupCoordinatorConfig, effects: inout GroupEffects) {
        removeMembers(
            where: { $0.pendingJoin == nil && $0.pendingSync == nil && $0.sessionDeadline <= now },
            now: now,
            config: config,
            effects: &effects
        )
        switch state {
        case .preparingRebalance(var rebalance) where rebalance.deadline <= now:
            // The initial delay is extended (once per expiry) while members keep arriving, as Kafka's
            // `InitialDelayedJoin` reschedules itself; the extension counts from when the timer was due.
            if var delay = rebalance.initialDelay, delay.newMemberAdded, delay.remainingMs > 0 {
                let next = min(config.initialRebalanceDelayMs, delay.remainingMs)
                delay.remainingMs = max(delay.remainingMs - config.initialRebalanceDelayMs, 0)
                delay.newMemberAdded = false
                rebalance.deadline += next
                rebalance.initialDelay = delay
                state = .preparingRebalance(rebalance)
            }
            if rebalance.deadline <= now {
                completeJoin(now: now, effects: &effects)
            }
        case .completingRebalance(let deadline) where deadline <= now:
            removeMembers(where: { !$0.synced }, now: now, config: config, effects: &effects)
        case .stable(let deadline?) where deadline <= now:
            state = .stable(syncDeadline: nil)
            removeMembers(where: { !$0.synced }, now: now, config: config, effects: &effects)
        case .empty, .preparingRebalance, .completingRebalance, .stable, .dead:
            break
        }
    }

    /// Expires offsets of an Empty group older than the retention, and deletes an Empty group that has no
    /// offsets left (Kafka's `cleanupGroupMetadata`).
    mutating func expireOffsets(now: Milliseconds, config: GroupCoordinatorConfig, effects: inout GroupEffects) {
        guard case .empty = state else { return }
        let expired = offsets.filter { _, committed in
            let since = max(committed.commitTimestampMs, stateSince)
            return since <= now - config.offsetsRetentionMs
        }.keys.sorted()
        var records = expired.map { GroupRecord(.offsetCommit(group: id, $0, nil)) }
        for key in expired { offsets[key] = nil }
        if offsets.isEmpty && members.isEmpty {
            state = .dead
            records.append(GroupRecord(.groupMetadata(group: id, nil)))
        }
        if !records.isEmpty { effects.append(id, records) }
    }
}
