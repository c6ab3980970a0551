// ReplicaHost: runs every Raft replica of this node (one per partition replica, plus the controller's group 0)
// on the event loops, as Replication's overview asks: each replica is confined to one loop and runs to
// completion there.
//
// What it owns: the slots (GroupID → replica), each pinned to the loop its group id hashes to; one repeating
// tick timer per loop that ticks every replica of that loop and then sends one coalesced heartbeat frame per
// peer (`HeartbeatCoalescer`); inbound routing of peer frames (coalesced heartbeats split, every message hopped
// once onto its replica's loop); the flush closure (the fsyncs of a `FlushPlan` on the blocking pool, then
// `completeFlush` back on the loop); adding and removing groups; handing leaderships away before a shutdown.
//
// What it must never do: block an event loop (fsyncs run on the blocking executor), touch a replica off its
// loop, or close a log while a flush of it is in flight (a removed replica closes when its last flush ends).
//
// Main types: `ReplicaHost`, `RaftTimings`, `HostedReplica`, `ReplicaContext`, `ReplicaStatus`,
// `LeadershipChange`.

import LogStorage
import Logging
import NIOCore
import Raft
import Records
import Replication
import Synchronization

/// How often replicas tick and how many ticks Raft's timeouts last. Limits carry their unit in their names.
public struct RaftTimings: Sendable, Equatable {
    /// Time between two ticks of every replica, in milliseconds.
    public var tickIntervalMs: Int64
    /// The randomized election timeout is drawn from `electionTimeoutTicksMin ..< electionTimeoutTicksMax`.
    public var electionTimeoutTicksMin: Int
    /// Upper bound (exclusive) of the election timeout, in ticks.
    public var electionTimeoutTicksMax: Int
    /// Ticks between two heartbeats of a leader.
    public var heartbeatIntervalTicks: Int

    /// Keel's defaults: a 50 ms tick, elections after 10–20 ticks (0.5–1 s), heartbeats every 2 ticks (100 ms).
    public init(
        tickIntervalMs: Int64 = 50, electionTimeoutTicksMin: Int = 10, electionTimeoutTicksMax: Int = 20,
        heartbeatIntervalTicks: Int = 2
    ) {
        self.tickIntervalMs = tickIntervalMs
        self.electionTimeoutTicksMin = electionTimeoutTicksMin
        self.electionTimeoutTicksMax = electionTimeoutTicksMax
        self.heartbeatIntervalTicks = heartbeatIntervalTicks
    }

    /// Why these timings cannot run, or nil.
    public var problem: String? {
        guard tickIntervalMs > 0 else { return "the Raft tick must be positive" }
        guard heartbeatIntervalTicks > 0, electionTimeoutTicksMin > heartbeatIntervalTicks,
            electionTimeoutTicksMax > electionTimeoutTicksMin
        else { return "Raft ticks must satisfy 0 < heartbeat < election min < election max" }
        return nil
    }

    /// The Raft configuration of a group with these timings.
    func configuration(id: NodeID, voters: [NodeID]) -> RaftConfiguration {
        RaftConfiguration(
            id: id, voters: voters, electionTimeoutTicksMin: electionTimeoutTicksMin,
            electionTimeoutTicksMax: electionTimeoutTicksMax, heartbeatIntervalTicks: heartbeatIntervalTicks)
    }
}

/// A replica learned of a new leader or a new term of its group.
public struct LeadershipChange: Equatable, Sendable {
    /// The group.
    public var group: GroupID
    /// The leader it knows of now (nil during an election).
    public var leader: NodeID?
    /// The replica's term.
    public var term: Term
    /// True when this node leads.
    public var isLocal: Bool
}

/// A snapshot of one hosted replica, for status pages and tests.
public struct ReplicaStatus: Equatable, Sendable {
    /// The group.
    public var group: GroupID
    /// True while this replica leads.
    public var isLeader: Bool
    /// The leader it knows of.
    public var leader: NodeID?
    /// Its current term.
    public var term: Term
    /// The group's voters.
    public var voters: [NodeID]
    /// One past the last committed offset.
    public var highWatermark: Offset
    /// The first offset still in its log.
    public var logStartOffset: Offset
    /// One past the last offset in its log.
    public var logEndOffset: Offset
    /// On the leader: one past what each follower is known to hold.
    public var followerEndOffsets: [NodeID: Offset]?
    /// Why the replica stopped (a disk failure), if it did.
    public var failure: String?
}

/// What a slot hosts: a partition replica or the controller. Confined to its slot's event loop.
protocol HostedReplica: AnyObject {
    /// The leader the replica knows of.
    var leader: NodeID? { get }
    /// Its term.
    var term: Term { get }
    /// True while it leads.
    var isLeader: Bool { get }
    /// One tick of its Raft clock.
    func tick(now: Milliseconds)
    /// One message from a peer.
    func receive(_ message: Message<BatchPayload>, now: Milliseconds)
    /// A flush the host ran for it.
    func completeFlush(_ request: FlushRequest, error: FileIOError?)
    /// Starts an election now.
    func campaign()
    /// The link to `peer` closed.
    func peerUnreachable(_ peer: NodeID)
    /// Hands leadership to `target`.
    func transferLeadership(to target: NodeID) throws(TransferError)
    /// Closes its log (no flush is in flight); waiting requests are answered.
    func close()
    /// Its role and offsets.
    func status(voters: [NodeID]) -> ReplicaStatus
    /// On the leader: the log end offset and what each follower heard from lately is known to hold; nil on a
    /// follower.
    var followerProgress: (logEnd: Offset, followers: [NodeID: Offset])? { get }
}

/// What a replica is built with, on its event loop.
struct ReplicaContext {
    /// Its Raft configuration.
    var configuration: RaftConfiguration
    /// Where its messages go.
    var transport: any RaftTransport
    /// Runs its flushes (on the blocking executor, reporting back with `completeFlush`).
    var flush: (FlushRequest) -> Void
    /// The seed of its election timeouts.
    var seed: UInt64
    /// The clock reading at open.
    var now: Milliseconds
    /// The loop it lives on.
    var loop: any EventLoop
}

/// Why the host refused a call.
public enum ReplicaHostError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No replica of this group on this node.
    case unknownGroup(GroupID)
    /// The group is hosted already.
    case groupExists(GroupID)
    /// The host is shutting down (or not started).
    case notRunning
    /// The replica could not open its log.
    case openFailed(GroupID, String)

    /// One line.
    public var description: String {
        switch self {
        case .unknownGroup(let group): return "no replica of \(group) on this node"
        case .groupExists(let group): return "a replica of \(group) is hosted already"
        case .notRunning: return "the replica host is not running"
        case .openFailed(let group, let why): return "cannot open the replica of \(group): \(why)"
        }
    }
}

/// Many replicas of one node over one `PeerTransport`. Thread-safe; every replica call hops to its event loop.
final class ReplicaHost: Sendable {
    let nodeID: NodeID
    let timings: RaftTimings
    let seed: UInt64
    let shards: [Shard]
    let peers: any PeerTransport
    let blocking: any BlockingExecutor
    let io: any FileIO & Sendable
    let clock: any BrokerClock
    let logger: Logger
    let onLeadershipChange: @Sendable (LeadershipChange) -> Void
    /// Hears the in-sync replicas of a group this node leads when they change (nil: it stopped leading).
    let onInSyncChange: @Sendable (GroupID, [NodeID]?) -> Void
    let limiter: LogRateLimiter
    /// A follower that has not held everything the leader had for this long leaves the in-sync replicas
    /// (`replica.lag.time.max.ms`; Kafka's default is 30 s).
    static let inSyncLagMsMax: Int64 = 10_000
    let running = Mutex<Bool>(false)

    /// The replicas of one event loop, their heartbeat coalescer and tick timer (touched only on that loop).
    final class Shard: Sendable {
        let loop: any EventLoop
        let state: NIOLoopBoundBox<ShardState>

        init(loop: any EventLoop, peers: any PeerTransport) {
            self.loop = loop
            // Built here, off the loop, and handed over whole: nothing else holds it.
            self.state = NIOLoopBoundBox.makeBoxSendingValue(ShardState(peers: peers), eventLoop: loop)
        }
    }

    /// A replica and what the host tracks for it; the flush closure keeps the slot, not the replica, so that a
    /// flush of a removed group never reaches a newer replica of the same group.
    final class Slot {
        var replica: (any HostedReplica)?
        /// The group's voters, this node included.
        var voters: [NodeID] = []
        /// The incarnation of the group (its topic's uid): messages of any other are dropped.
        var incarnation: Int64 = 0
        /// The leader and term last reported to `onLeadershipChange`.
        var reported: (leader: NodeID?, term: Term) = (nil, .zero)
        var flushInFlight = false
        var closing: EventLoopPromise<Void>?
        /// On the leader: when each follower last held everything the leader had (Kafka's in-sync rule).
        var caughtUpAtMs: [NodeID: Int64] = [:]
        /// The in-sync replicas last reported (nil while not leading).
        var reportedInSync: [NodeID]?
    }

    final class ShardState {
        var slots: [GroupID: Slot] = [:]
        /// The slots' groups in order: every tick walks them in this order.
        var order: [GroupID] = []
        let transport: ShardTransport
        var timer: RepeatedTask?
        /// Set by `shutdown`: no group may be added any more.
        var stopped = false
        var ticks = 0

        init(peers: any PeerTransport) { transport = ShardTransport(peers: peers) }

        func insert(_ group: GroupID, _ slot: Slot) {
            slots[group] = slot
            transport.incarnations[group] = slot.incarnation
            let at = order.firstIndex { $0 > group } ?? order.count
            order.insert(group, at: at)
        }

        func remove(_ group: GroupID) -> Slot? {
            order.removeAll { $0 == group }
            transport.incarnations[group] = nil
            return slots.removeValue(forKey: group)
        }
    }

    /// A shard's `RaftTransport`: heartbeats wait in its coalescer for the end of the tick, anything else leaves
    /// at once (the network still batches the writes of one loop turn).
    final class ShardTransport: RaftTransport {
        let peers: any PeerTransport
        var coalescer = HeartbeatCoalescer()
        /// The incarnation of each hosted group, stamped on its messages.
        var incarnations: [GroupID: Int64] = [:]

        init(peers: any PeerTransport) { self.peers = peers }

        func send(_ message: ReplicationMessage) {
            var message = message
            message.incarnation = incarnations[message.group] ?? 0
            guard let frame = coalescer.route(message) else { return }
            peers.send(frame, to: message.message.to)
        }

        func flushHeartbeats() {
            for frame in coalescer.flush() {
                if case .heartbeats(let beats) = frame { peers.send(frame, to: beats.to) }
            }
        }
    }

    /// A host whose replicas run on `group`'s event loops, fsync through `blocking` and `io`, and talk over
    /// `peers`. `onLeadershipChange` hears, on the replica's event loop, every change of leader or term a
    /// replica learns of.
    init(
        nodeID: NodeID, timings: RaftTimings, seed: UInt64, group: any EventLoopGroup, peers: any PeerTransport,
        blocking: any BlockingExecutor, io: any FileIO & Sendable, clock: any BrokerClock, logger: Logger,
        onLeadershipChange: @escaping @Sendable (LeadershipChange) -> Void,
        onInSyncChange: @escaping @Sendable (GroupID, [NodeID]?) -> Void = { _, _ in }
    ) {
        self.onInSyncChange = onInSyncChange
        self.nodeID = nodeID
        self.timings = timings
        self.seed = seed
        self.peers = peers
        self.blocking = blocking
        self.io = io
        self.clock = clock
        self.logger = logger
        self.onLeadershipChange = onLeadershipChange
        self.limiter = LogRateLimiter(intervalMs: 5_000, clock: clock)
        var loops: [any EventLoop] = []
        for loop in group.makeIterator() { loops.append(loop) }
        precondition(!loops.isEmpty, "an event loop group has at least one loop")
        self.shards = loops.map { Shard(loop: $0, peers: peers) }
    }

    /// Starts the tick timers.
    func start(on loop: any EventLoop) -> EventLoopFuture<Void> {
        running.withLock { $0 = true }
        let interval = TimeAmount.milliseconds(timings.tickIntervalMs)
        let started = shards.map { shard in
            shard.loop.submit {
                let state = shard.state.value
                state.timer = shard.loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                    self.tick(shard)
                }
            }
        }
        return EventLoopFuture.andAllSucceed(started, on: loop)
    }

    /// Stops ticking and closes every replica (after its flush in flight).
    func shutdown(on loop: any EventLoop) -> EventLoopFuture<Void> {
        running.withLock { $0 = false }
        let closes = shards.map { shard in
            shard.loop.flatSubmit { () -> EventLoopFuture<Void> in
                let state = shard.state.value
                state.stopped = true
                state.timer?.cancel()
                state.timer = nil
                let slots = state.slots
                let order = state.order
                state.slots = [:]
                state.order = []
                // In group order, so that a simulated run replays exactly.
                let futures = order.compactMap { group in slots[group].map { self.close($0, group: group, on: shard) } }
                return EventLoopFuture.andAllComplete(futures, on: shard.loop)
            }
        }
        return EventLoopFuture.andAllComplete(closes, on: loop)
    }

    // MARK: Groups

    /// The event loop that group's replica lives on: a stable hash of the group id (FNV-1a), so that the same
    /// group lands on the same loop on every run.
    func loop(for group: GroupID) -> any EventLoop { shard(for: group).loop }

    func shard(for group: GroupID) -> Shard {
        shards[Int(Self.stableHash(group) % UInt64(shards.count))]
    }

    /// FNV-1a over the topic's UTF-8 and the partition's four bytes: the same on every run and every node
    /// (Swift's `hashValue` is seeded per process).
    static func stableHash(_ group: GroupID) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in group.topic.utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        let partition = UInt32(bitPattern: group.partition)
        for shift in stride(from: UInt32(0), to: 32, by: 8) {
            hash = (hash ^ UInt64(partition >> shift & 0xff)) &* 0x100_0000_01b3
        }
        return hash
    }

    /// Opens this node's replica of `group` with `voters` (this node among them): `open` builds it on the
    /// group's loop from the context the host provides. With `campaign`, the new replica starts an election at
    /// once (a group of one voter, or the preferred leader of a new partition) instead of waiting for its
    /// election timeout. `incarnation` (the topic's uid) tells this group from an earlier or later topic of the
    /// same name: its messages carry it, and messages of another incarnation are dropped.
    func addGroup(
        _ group: GroupID, voters: [NodeID], campaign: Bool, incarnation: Int64 = 0,
        open: @escaping @Sendable (ReplicaContext) throws -> any HostedReplica
    ) -> EventLoopFuture<Void> {
        let shard = shard(for: group)
        guard running.withLock({ $0 }) else { return shard.loop.makeFailedFuture(ReplicaHostError.notRunning) }
        return shard.loop.submit { () throws -> Void in
            let state = shard.state.value
            guard !state.stopped else { throw ReplicaHostError.notRunning }
            guard state.slots[group] == nil else { throw ReplicaHostError.groupExists(group) }
            guard voters.contains(self.nodeID) else {
                throw ReplicaHostError.openFailed(group, "node \(self.nodeID) is not among its voters \(voters)")
            }
            let slot = Slot()
            let boundSlot = NIOLoopBound(slot, eventLoop: shard.loop)
            let seed = self.seed ^ (self.nodeID.value &* 0x9E37_79B9_7F4A_7C15) ^ Self.stableHash(group)
            let context = ReplicaContext(
                configuration: self.timings.configuration(id: self.nodeID, voters: voters),
                transport: state.transport,
                flush: { request in self.runFlush(request, slot: boundSlot.value, group: group, on: shard) },
                seed: seed, now: self.clock.now(), loop: shard.loop)
            let replica: any HostedReplica
            do {
                replica = try open(context)
            } catch {
                throw ReplicaHostError.openFailed(group, "\(error)")
            }
            slot.replica = replica
            slot.voters = voters
            slot.incarnation = incarnation
            state.insert(group, slot)
            if campaign { replica.campaign() }
            self.noticeLeadership(slot, replica, group: group)
        }
    }

    /// Closes this node's replica of `group`: no more ticks or messages reach it, and its log closes once its
    /// flush in flight has ended. Leaves the directory to the caller.
    func removeGroup(_ group: GroupID) -> EventLoopFuture<Void> {
        let shard = shard(for: group)
        return shard.loop.flatSubmit {
            guard let slot = shard.state.value.remove(group) else {
                return shard.loop.makeFailedFuture(ReplicaHostError.unknownGroup(group))
            }
            return self.close(slot, group: group, on: shard)
        }
    }

    /// Runs `body` with the group's replica, on its event loop.
    func withReplica<Value: Sendable>(
        _ group: GroupID, _ body: @escaping @Sendable (any HostedReplica) throws -> Value
    ) -> EventLoopFuture<Value> {
        let shard = shard(for: group)
        return shard.loop.submit {
            guard let replica = shard.state.value.slots[group]?.replica else {
                throw ReplicaHostError.unknownGroup(group)
            }
            return try body(replica)
        }
    }

    /// Every hosted replica's status, in group order.
    func statuses(on loop: any EventLoop) -> EventLoopFuture<[ReplicaStatus]> {
        let parts = shards.map { shard in
            shard.loop.submit { () -> [ReplicaStatus] in
                let state = shard.state.value
                return state.order.compactMap { group in
                    guard let slot = state.slots[group], let replica = slot.replica else { return nil }
                    return replica.status(voters: slot.voters)
                }
            }
        }
        return EventLoopFuture.whenAllSucceed(parts, on: loop).map { $0.flatMap { $0 }.sorted { $0.group < $1.group } }
    }

    /// The link to `peer` closed: every replica that follows it prepares to elect a new leader soon.
    func peerUnreachable(_ peer: NodeID) {
        for shard in shards {
            shard.loop.execute {
                let state = shard.state.value
                for group in state.order {
                    guard let slot = state.slots[group], let replica = slot.replica else { continue }
                    replica.peerUnreachable(peer)
                    self.noticeLeadership(slot, replica, group: group)
                }
            }
        }
    }

    /// Starts an election for `group` on this node now (tests; an operator's preferred-leader election).
    func campaign(_ group: GroupID) -> EventLoopFuture<Void> {
        withReplica(group) { $0.campaign() }
    }

    /// Hands every leadership of this node to another voter of the group that this node is linked to (before a
    /// graceful shutdown, so that producers see a short NOT_LEADER_OR_FOLLOWER rather than an election timeout),
    /// spreading them over the peers, and completes once it leads nothing or `timeoutMs` has passed, with the
    /// groups it still leads.
    func transferLeadershipsAway(timeoutMs: Int64, on loop: any EventLoop) -> EventLoopFuture<[GroupID]> {
        let promise = loop.makePromise(of: [GroupID].self)
        let deadline = clock.now().value + timeoutMs
        let retryEvery = max(1, timings.electionTimeoutTicksMin)
        let interval = TimeAmount.milliseconds(timings.tickIntervalMs)
        @Sendable func round(_ polls: Int) {
            ledGroups(on: loop).whenSuccess { led in
                if led.isEmpty || self.clock.now().value >= deadline {
                    promise.succeed(led.map(\.group))
                    return
                }
                if polls % retryEvery == 0 {
                    // A transfer that has not finished within an election timeout is abandoned by Raft: ask again.
                    for (k, entry) in led.enumerated() {
                        let targets = entry.voters.filter { $0 != self.nodeID && self.peers.isConnected(to: $0) }
                        guard !targets.isEmpty else { continue }
                        let target = targets[(k + polls / retryEvery) % targets.count]
                        _ = self.withReplica(entry.group) { replica in try replica.transferLeadership(to: target) }
                    }
                }
                loop.scheduleTask(in: interval) { round(polls + 1) }
            }
        }
        round(0)
        return promise.futureResult
    }

    struct GroupVoters: Sendable {
        var group: GroupID
        var voters: [NodeID]
    }

    /// The groups this node leads now, with their voters, in group order.
    func ledGroups(on loop: any EventLoop) -> EventLoopFuture<[GroupVoters]> {
        let parts = shards.map { shard in
            shard.loop.submit { () -> [GroupVoters] in
                let state = shard.state.value
                return state.order.compactMap { group in
                    guard let slot = state.slots[group], slot.replica?.isLeader == true else { return nil }
                    return GroupVoters(group: group, voters: slot.voters)
                }
            }
        }
        return EventLoopFuture.whenAllSucceed(parts, on: loop).map { $0.flatMap { $0 }.sorted { $0.group < $1.group } }
    }

    // MARK: Driving the replicas

    /// One tick of a loop: every replica ticks (in group order), then one heartbeat frame leaves per peer.
    func tick(_ shard: Shard) {
        let state = shard.state.value
        let now = clock.now()
        state.ticks &+= 1
        let checkInSync = state.ticks % 4 == 0
        for group in state.order {
            guard let slot = state.slots[group], let replica = slot.replica else { continue }
            replica.tick(now: now)
            noticeLeadership(slot, replica, group: group)
            if checkInSync { noticeInSync(slot, replica, group: group, now: now.value) }
        }
        state.transport.flushHeartbeats()
    }

    /// Recomputes a leader's in-sync replicas: itself, and every follower that held all the leader had within
    /// `inSyncLagMsMax`.
    func noticeInSync(_ slot: Slot, _ replica: any HostedReplica, group: GroupID, now: Int64) {
        guard let progress = replica.followerProgress else {
            slot.caughtUpAtMs = [:]
            if slot.reportedInSync != nil {
                slot.reportedInSync = nil
                onInSyncChange(group, nil)
            }
            return
        }
        var inSync: [NodeID] = []
        for voter in slot.voters {
            if voter == nodeID {
                inSync.append(voter)
                continue
            }
            if let end = progress.followers[voter], end >= progress.logEnd { slot.caughtUpAtMs[voter] = now }
            // A new leader gives its followers the benefit of the doubt for one lag period.
            let since = slot.caughtUpAtMs[voter] ?? {
                slot.caughtUpAtMs[voter] = now
                return now
            }()
            if now - since <= Self.inSyncLagMsMax { inSync.append(voter) }
        }
        if slot.reportedInSync != inSync {
            slot.reportedInSync = inSync
            onInSyncChange(group, inSync)
        }
    }

    /// Routes Raft frames of one read from a peer to the replicas: coalesced heartbeats split, then one hop per
    /// event loop that hosts a group named in them, messages kept in their order.
    func deliver(_ envelopes: [ReplicationMessage], from peer: NodeID) {
        var byShard: [ObjectIdentifier: (shard: Shard, envelopes: [ReplicationMessage])] = [:]
        for envelope in envelopes {
            let shard = shard(for: envelope.group)
            byShard[ObjectIdentifier(shard), default: (shard, [])].envelopes.append(envelope)
        }
        for (shard, envelopes) in byShard.values {
            if shard.loop.inEventLoop {
                receive(envelopes, on: shard, from: peer)
            } else {
                shard.loop.execute { self.receive(envelopes, on: shard, from: peer) }
            }
        }
    }

    func receive(_ envelopes: [ReplicationMessage], on shard: Shard, from peer: NodeID) {
        let state = shard.state.value
        let now = clock.now()
        for envelope in envelopes {
            guard let slot = state.slots[envelope.group], let replica = slot.replica else {
                // The group may be created here a moment later (the controller's record not applied yet).
                if !state.stopped, limiter.allow("unknown \(envelope.group)") {
                    logger.info("dropping messages from node \(peer) for \(envelope.group): no replica here (yet)")
                }
                continue
            }
            guard envelope.incarnation == slot.incarnation else {
                // A replica of a deleted topic on one node, one of the topic created again under the same name on
                // the other: never the same Raft group (votes or entries across them would mix the two logs).
                if limiter.allow("incarnation \(envelope.group)") {
                    logger.info(
                        """
                        dropping messages from node \(peer) for \(envelope.group): topic incarnation \
                        \(envelope.incarnation), this replica's is \(slot.incarnation)
                        """)
                }
                continue
            }
            replica.receive(envelope.message, now: now)
            noticeLeadership(slot, replica, group: envelope.group)
        }
    }

    /// Reports a change of the leader or the term that `replica` knows of.
    func noticeLeadership(_ slot: Slot, _ replica: any HostedReplica, group: GroupID) {
        let now = (leader: replica.leader, term: replica.term)
        guard now.leader != slot.reported.leader || now.term != slot.reported.term else { return }
        slot.reported = now
        onLeadershipChange(
            LeadershipChange(group: group, leader: now.leader, term: now.term, isLocal: now.leader == nodeID))
    }

    /// A replica's flush closure: fsyncs on the blocking executor, `completeFlush` back on the loop.
    func runFlush(_ request: FlushRequest, slot: Slot, group: GroupID, on shard: Shard) {
        slot.flushInFlight = true
        let io = self.io
        let boundSlot = NIOLoopBound(slot, eventLoop: shard.loop)
        blocking.run(on: shard.loop) { () -> FileIOError? in
            do throws(FileIOError) {
                try request.plan.execute(io: io)
                return nil
            } catch {
                return error
            }
        }.whenComplete { result in
            let slot = boundSlot.value
            slot.flushInFlight = false
            let error: FileIOError?
            switch result {
            case .success(let failure): error = failure
            case .failure:
                // The pool is stopping: the fsync never ran, so nothing it covered may count as durable.
                error = FileIOError(operation: .sync, path: request.plan.directory ?? "\(group)", errno: 125)
            }
            if let error { self.logger.error("flush of \(group) failed: \(error)") }
            if let replica = slot.replica {
                replica.completeFlush(request, error: error)
                self.noticeLeadership(slot, replica, group: group)
            }
            self.finishCloseIfIdle(slot, group: group)
        }
    }

    /// Closes a slot's replica now, or after its flush in flight.
    func close(_ slot: Slot, group: GroupID, on shard: Shard) -> EventLoopFuture<Void> {
        if let closing = slot.closing { return closing.futureResult }
        let promise = shard.loop.makePromise(of: Void.self)
        slot.closing = promise
        finishCloseIfIdle(slot, group: group)
        return promise.futureResult
    }

    func finishCloseIfIdle(_ slot: Slot, group: GroupID) {
        guard let promise = slot.closing, !slot.flushInFlight else { return }
        slot.closing = nil
        guard let replica = slot.replica else {
            promise.succeed()
            return
        }
        slot.replica = nil
        replica.close()
        promise.succeed()
    }
}
