// ReplicaHost: the shell that runs many `ReplicaEngine`s (one per partition replica of this node) on the event
// loops, as Replication's overview asks: every engine is confined to one loop and runs to completion there.
//
// What it owns: the engines (GroupID → engine), each pinned to the loop its group id hashes to; one repeating
// tick timer per loop that ticks every engine of that loop and then sends one coalesced heartbeat frame per
// peer (`HeartbeatCoalescer`); inbound routing from `PeerNetwork` (coalesced heartbeats split, every message
// hopped once onto its engine's loop); the flush closure (the fsyncs of a `FlushPlan` on the blocking pool, then
// `completeFlush` back on the loop); adding and removing groups; clean shutdown.
//
// What it must never do: block an event loop (fsyncs run on the `NIOThreadPool`), touch an engine off its
// loop, or close a log while a flush of it is in flight (a removed engine closes when its last flush ends).
//
// How a node uses it: build one `PeerNetwork` (from `--id`, `--cluster-listen`, `--voters`) and one `ReplicaHost`
// over the node's event loop group and blocking pool, then `start()` (ticks, then the network). `addGroup` every
// partition assigned to this node (at start, and when the controller applies "topic created"); `removeGroup` on
// "topic deleted", then remove the directory. Serve Kafka requests for a partition on `loop(for:)`: `propose`
// (acks=1 / acks=all), `withEngine` for reads below the high watermark and for `onHighWatermark` hooks; listen to
// `onLeadershipChange` for Metadata. On SIGTERM: `transferLeadershipsAway()`, then `shutdown()`, then the pool and
// the loops.
//
// Main types: `ReplicaHost`, `ReplicaHostConfig`, `ReplicaStatus`, `LeadershipChange`, `CommitPromise`.

import Broker
import LogStorage
import Logging
import NIOCore
import NIOPosix
import Raft
import Records
import Replication
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The token a hosted engine's commit waiters carry: the promise of an acks=all produce.
public typealias CommitPromise = EventLoopPromise<Proposal>

/// How the host drives its engines. Limits carry their unit in their names.
public struct ReplicaHostConfig: Sendable {
    /// This node.
    public var nodeID: NodeID
    /// Time between two ticks of every engine, in milliseconds (Raft timeouts count ticks).
    public var tickIntervalMs: Int64
    /// Election timeout range and heartbeat interval, in ticks, for every group.
    public var electionTimeoutTicksMin: Int
    /// Upper bound (exclusive) of the randomized election timeout, in ticks.
    public var electionTimeoutTicksMax: Int
    /// Ticks between two heartbeats of a leader.
    public var heartbeatIntervalTicks: Int
    /// Seeds the engines' election timeouts (mixed with the node id and the group).
    public var seed: UInt64

    /// Keel's defaults: a 50 ms tick, elections after 10–20 ticks (0.5–1 s), heartbeats every 2 ticks.
    public init(
        nodeID: NodeID, tickIntervalMs: Int64 = 50, electionTimeoutTicksMin: Int = 10,
        electionTimeoutTicksMax: Int = 20, heartbeatIntervalTicks: Int = 2,
        seed: UInt64 = UInt64.random(in: 0...UInt64.max)
    ) {
        self.nodeID = nodeID
        self.tickIntervalMs = tickIntervalMs
        self.electionTimeoutTicksMin = electionTimeoutTicksMin
        self.electionTimeoutTicksMax = electionTimeoutTicksMax
        self.heartbeatIntervalTicks = heartbeatIntervalTicks
        self.seed = seed
    }

    /// Checks the configuration at start-up.
    public func validate() throws(PeerConfigError) {
        guard tickIntervalMs > 0 else { throw .invalid("tickIntervalMs must be positive") }
        guard heartbeatIntervalTicks > 0, electionTimeoutTicksMin > heartbeatIntervalTicks,
            electionTimeoutTicksMax > electionTimeoutTicksMin
        else { throw .invalid("ticks must satisfy 0 < heartbeat < election min < election max") }
    }
}

/// Why the host refused a call.
public enum ReplicaHostError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No engine for this group on this node.
    case unknownGroup(GroupID)
    /// The group is hosted already.
    case groupExists(GroupID)
    /// The host is shutting down (or not started).
    case notRunning
    /// The engine could not open its log.
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
    /// The replica's Raft role.
    public var isLeader: Bool
    /// The leader it knows of.
    public var leader: NodeID?
    /// Its current term.
    public var term: Term
    /// One past the last committed offset.
    public var highWatermark: Offset
    /// One past the last offset in its log.
    public var logEndOffset: Offset
    /// True while appends wait for an fsync.
    public var waitingForFlush: Bool
    /// Why the engine stopped (a disk failure), if it did.
    public var failure: String?
}

/// Many partition replicas of one node over one `PeerNetwork`. Thread-safe; every engine call hops to the
/// engine's event loop.
public final class ReplicaHost: Sendable {
    /// The configuration.
    public let config: ReplicaHostConfig
    /// The cluster links.
    public let network: PeerNetwork
    let shards: [Shard]
    let pool: NIOThreadPool
    let io: any FileIO & Sendable
    let clock: any BrokerClock
    let logger: Logger
    let onLeadershipChange: @Sendable (LeadershipChange) -> Void
    let limiter = LogRateLimiter(intervalMs: 5_000)
    let running = Mutex<Bool>(false)

    /// The engines of one event loop, their heartbeat coalescer and tick timer (touched only on that loop).
    final class Shard: Sendable {
        let loop: any EventLoop
        let state: NIOLoopBoundBox<ShardState>

        init(loop: any EventLoop, network: PeerNetwork) {
            self.loop = loop
            // Built here, off the loop, and handed over whole: nothing else holds it.
            self.state = NIOLoopBoundBox.makeBoxSendingValue(ShardState(network: network), eventLoop: loop)
        }
    }

    /// An engine and what its shell tracks for it; the flush closure keeps the slot, not the engine, so that a
    /// flush of a removed group never reaches a newer engine of the same group.
    final class Slot {
        var engine: ReplicaEngine<CommitPromise>?
        /// The group's voters, this node included.
        var voters: [NodeID] = []
        /// The leader and term last reported to `onLeadershipChange`.
        var reported: (leader: NodeID?, term: Term) = (nil, .zero)
        var flushInFlight = false
        var closing: EventLoopPromise<Void>?
        /// Promises of acks=all produces not answered yet, failed if the engine closes first.
        var waiting: [ObjectIdentifier: CommitPromise] = [:]
    }

    final class ShardState {
        var slots: [GroupID: Slot] = [:]
        let transport: ShardTransport
        var timer: RepeatedTask?
        /// Set by `shutdown`: no group may be added any more.
        var stopped = false

        init(network: PeerNetwork) { transport = ShardTransport(network: network) }
    }

    /// A shard's `RaftTransport`: heartbeats wait in its coalescer for the end of the tick, anything else leaves
    /// at once (the network still batches the writes of one loop turn).
    final class ShardTransport: RaftTransport {
        let network: PeerNetwork
        var coalescer = HeartbeatCoalescer()

        init(network: PeerNetwork) { self.network = network }

        func send(_ message: ReplicationMessage) {
            guard let frame = coalescer.route(message) else { return }
            network.send(frame, to: message.message.to)
        }

        func flushHeartbeats() {
            for frame in coalescer.flush() {
                if case .heartbeats(let beats) = frame { network.send(frame, to: beats.to) }
            }
        }
    }

    /// A host whose engines run on `group`'s event loops, fsync on `pool` (started by the caller) through `io`,
    /// and talk over `network`. `onLeadershipChange` hears, on the group's event loop, every change of leader or
    /// term a replica learns of (Metadata answers, the controller's "partition leader changed" records, the
    /// coordinator of a `__consumer_offsets` partition).
    public init(
        config: ReplicaHostConfig, network: PeerNetwork, group: MultiThreadedEventLoopGroup, pool: NIOThreadPool,
        io: any FileIO & Sendable, clock: any BrokerClock, logger: Logger,
        onLeadershipChange: @escaping @Sendable (LeadershipChange) -> Void = { _ in }
    ) {
        self.onLeadershipChange = onLeadershipChange
        self.config = config
        self.network = network
        self.pool = pool
        self.io = io
        self.clock = clock
        self.logger = logger
        self.shards = group.makeIterator().map { Shard(loop: $0, network: network) }
        precondition(!shards.isEmpty, "an event loop group has at least one loop")
    }

    /// Starts the tick timers, then the network (whose inbound frames go to the engines). If the network cannot
    /// start (the cluster port is taken), everything is stopped again and the error rethrown.
    public func start() async throws {
        try config.validate()
        running.withLock { $0 = true }
        logger.info("replica host of node \(config.nodeID): seed \(config.seed), tick \(config.tickIntervalMs) ms")
        let interval = TimeAmount.milliseconds(config.tickIntervalMs)
        for shard in shards {
            try await shard.loop.submit {
                let state = shard.state.value
                state.timer = shard.loop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { _ in
                    self.tick(shard)
                }
            }.get()
        }
        do {
            try await network.start { [self] frames, peer in deliver(frames, from: peer) }
        } catch {
            await shutdown()
            throw error
        }
    }

    /// Stops ticking, closes every engine (after its flush in flight), then closes the cluster links.
    public func shutdown() async {
        running.withLock { $0 = false }
        var closes: [EventLoopFuture<Void>] = []
        for shard in shards {
            let closed = shard.loop.flatSubmit { () -> EventLoopFuture<Void> in
                let state = shard.state.value
                state.stopped = true
                state.timer?.cancel()
                state.timer = nil
                let slots = state.slots
                state.slots = [:]
                let futures = slots.map { self.close($0.value, group: $0.key, on: shard) }
                return EventLoopFuture.andAllComplete(futures, on: shard.loop)
            }
            closes.append(closed)
        }
        for closed in closes { try? await closed.get() }
        await network.shutdown()
    }

    // MARK: Groups

    /// The event loop that group's engine lives on: a stable hash of the group id (FNV-1a), so that the same
    /// group lands on the same loop on every run.
    public func loop(for group: GroupID) -> any EventLoop { shard(for: group).loop }

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

    /// Opens (or creates) this node's replica of `group` in `directory`, with `voters` (this node among them).
    /// Called when a topic is created, and at start for every assigned partition.
    public func addGroup(
        _ group: GroupID, voters: [NodeID], directory: String, logConfig: LogConfig
    ) -> EventLoopFuture<Void> {
        let shard = shard(for: group)
        guard running.withLock({ $0 }) else { return shard.loop.makeFailedFuture(ReplicaHostError.notRunning) }
        return shard.loop.submit { () throws -> Void in
            let state = shard.state.value
            guard !state.stopped else { throw ReplicaHostError.notRunning }
            guard state.slots[group] == nil else { throw ReplicaHostError.groupExists(group) }
            guard voters.contains(self.config.nodeID) else {
                throw ReplicaHostError.openFailed(group, "node \(self.config.nodeID) is not among its voters \(voters)")
            }
            let slot = Slot()
            let boundSlot = NIOLoopBound(slot, eventLoop: shard.loop)
            let configuration = RaftConfiguration(
                id: self.config.nodeID, voters: voters, electionTimeoutTicksMin: self.config.electionTimeoutTicksMin,
                electionTimeoutTicksMax: self.config.electionTimeoutTicksMax,
                heartbeatIntervalTicks: self.config.heartbeatIntervalTicks)
            let seed = self.config.seed ^ (self.config.nodeID.value &* 0x9E37_79B9_7F4A_7C15) ^ Self.stableHash(group)
            let engine: ReplicaEngine<CommitPromise>
            do throws(ReplicaError) {
                engine = try ReplicaEngine(
                    group: group, configuration: configuration, directory: directory, logConfig: logConfig,
                    io: self.io, transport: state.transport,
                    flush: { request in self.runFlush(request, slot: boundSlot.value, group: group, on: shard) },
                    seed: seed, now: self.clock.now())
            } catch {
                throw ReplicaHostError.openFailed(group, "\(error)")
            }
            engine.onCommitOutcomes = { outcomes in
                let slot = boundSlot.value
                for outcome in outcomes {
                    slot.waiting.removeValue(forKey: ObjectIdentifier(outcome.token.futureResult))
                    outcome.token.completeWith(outcome.result.mapError { $0 as any Error })
                }
            }
            slot.engine = engine
            slot.voters = voters
            state.slots[group] = slot
        }
    }

    /// Closes this node's replica of `group` (the topic was deleted): no more ticks or messages reach it, and
    /// its log closes once its flush in flight has ended. Leaves the directory to the caller.
    public func removeGroup(_ group: GroupID) -> EventLoopFuture<Void> {
        let shard = shard(for: group)
        return shard.loop.flatSubmit {
            guard let slot = shard.state.value.slots.removeValue(forKey: group) else {
                return shard.loop.makeFailedFuture(ReplicaHostError.unknownGroup(group))
            }
            return self.close(slot, group: group, on: shard)
        }
    }

    /// The groups hosted now.
    public func groups() async -> [GroupID] {
        var all: [GroupID] = []
        for shard in shards {
            if let keys = try? await shard.loop.submit({ Array(shard.state.value.slots.keys) }).get() {
                all += keys
            }
        }
        return all.sorted()
    }

    /// Runs `body` with the group's engine, on its event loop (reads, hooks such as `onHighWatermark`, tests).
    public func withEngine<Value: Sendable>(
        _ group: GroupID, _ body: @escaping @Sendable (ReplicaEngine<CommitPromise>) throws -> Value
    ) -> EventLoopFuture<Value> {
        let shard = shard(for: group)
        return shard.loop.submit {
            guard let engine = shard.state.value.slots[group]?.engine else {
                throw ReplicaHostError.unknownGroup(group)
            }
            return try body(engine)
        }
    }

    /// The replica's role, term and offsets.
    public func status(of group: GroupID) -> EventLoopFuture<ReplicaStatus> {
        withEngine(group) { engine in
            ReplicaStatus(
                isLeader: engine.isLeader, leader: engine.leader, term: engine.term,
                highWatermark: engine.highWatermark, logEndOffset: engine.log.logEndOffset,
                waitingForFlush: engine.waitingForFlush, failure: engine.failure)
        }
    }

    /// Appends a producer's batches on the leader; the future succeeds once they are in the leader's log
    /// (acks=1) or, with `waitForCommit`, once Raft has committed them (acks=all). Fails with `ReplicaError`
    /// (`.notLeader` on a follower) or `ReplicaHostError`.
    public func propose(
        _ batches: ByteBuffer, to group: GroupID, waitForCommit: Bool
    ) -> EventLoopFuture<Proposal> {
        let shard = shard(for: group)
        let clock = self.clock
        return shard.loop.flatSubmit {
            guard let engine = shard.state.value.slots[group]?.engine else {
                return shard.loop.makeFailedFuture(ReplicaHostError.unknownGroup(group))
            }
            let proposal: Proposal
            do throws(ReplicaError) {
                proposal = try engine.propose(batches, now: clock.now())
            } catch {
                return shard.loop.makeFailedFuture(error)
            }
            guard waitForCommit else { return shard.loop.makeSucceededFuture(proposal) }
            let promise = shard.loop.makePromise(of: Proposal.self)
            if let slot = shard.state.value.slots[group] {
                slot.waiting[ObjectIdentifier(promise.futureResult)] = promise
            }
            engine.awaitCommit(proposal, token: promise)
            return promise.futureResult
        }
    }

    /// Starts an election for `group` on this node now (tests; an operator's preferred-leader election).
    public func campaign(_ group: GroupID) -> EventLoopFuture<Void> {
        withEngine(group) { $0.campaign() }
    }

    /// Hands every leadership of this node to another voter of the group that this node is linked to (before a
    /// graceful shutdown, so that producers see a short NOT_LEADER_OR_FOLLOWER rather than an election timeout),
    /// spreading them over the peers, and waits until it leads nothing or `timeoutMs` has passed. Returns the
    /// groups it still leads.
    public func transferLeadershipsAway(timeoutMs: Int64 = 2000) async -> [GroupID] {
        let deadline = NIODeadline.now() + .milliseconds(timeoutMs)
        let retryEvery = max(1, config.electionTimeoutTicksMin)
        var polls = 0
        var led = await ledGroups()
        while !led.isEmpty, NIODeadline.now() < deadline {
            if polls % retryEvery == 0 {
                // A transfer that has not finished within an election timeout is abandoned by Raft: ask again.
                for (k, entry) in led.enumerated() {
                    let targets = entry.voters.filter { $0 != config.nodeID && network.isConnected(to: $0) }
                    guard !targets.isEmpty else { continue }
                    let target = targets[(k + polls / retryEvery) % targets.count]
                    _ = try? await withEngine(entry.group) { engine in try engine.transferLeadership(to: target) }
                        .get()
                }
            }
            try? await Task.sleep(nanoseconds: UInt64(config.tickIntervalMs) * 1_000_000)
            polls += 1
            led = await ledGroups()
        }
        return led.map(\.group)
    }

    /// The groups this node leads now, with their voters, in group order.
    func ledGroups() async -> [(group: GroupID, voters: [NodeID])] {
        var led: [(group: GroupID, voters: [NodeID])] = []
        for shard in shards {
            let found = try? await shard.loop.submit { () -> [GroupVoters] in
                shard.state.value.slots.compactMap { group, slot in
                    slot.engine?.isLeader == true ? GroupVoters(group: group, voters: slot.voters) : nil
                }
            }.get()
            led += (found ?? []).map { ($0.group, $0.voters) }
        }
        return led.sorted { $0.group < $1.group }
    }

    struct GroupVoters: Sendable {
        var group: GroupID
        var voters: [NodeID]
    }

    // MARK: Driving the engines

    /// One tick of a loop: every engine ticks (in group order), then one heartbeat frame leaves per peer.
    func tick(_ shard: Shard) {
        let state = shard.state.value
        let now = clock.now()
        for group in state.slots.keys.sorted() {
            guard let slot = state.slots[group], let engine = slot.engine else { continue }
            engine.tick(now: now)
            noticeLeadership(slot, engine)
        }
        state.transport.flushHeartbeats()
    }

    /// Routes the frames of one read from a peer to the engines: coalesced heartbeats split, then one hop per
    /// event loop that hosts a group named in them, messages kept in their order.
    func deliver(_ frames: [PeerFrame], from peer: NodeID) {
        var byShard: [ObjectIdentifier: (shard: Shard, envelopes: [ReplicationMessage])] = [:]
        func route(_ envelope: ReplicationMessage) {
            let shard = shard(for: envelope.group)
            byShard[ObjectIdentifier(shard), default: (shard, [])].envelopes.append(envelope)
        }
        for frame in frames {
            switch frame {
            case .message(let envelope): route(envelope)
            case .heartbeats(let beats): for envelope in beats.split() { route(envelope) }
            }
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
            guard let slot = state.slots[envelope.group], let engine = slot.engine else {
                // The group may be created here a moment later (the controller's record not applied yet).
                if !state.stopped, limiter.allow("unknown \(envelope.group)") {
                    logger.info("dropping messages from node \(peer) for \(envelope.group): no replica here (yet)")
                }
                continue
            }
            engine.receive(envelope.message, now: now)
            noticeLeadership(slot, engine)
        }
    }

    /// Reports a change of the leader or the term that `engine` knows of.
    func noticeLeadership(_ slot: Slot, _ engine: ReplicaEngine<CommitPromise>) {
        let now = (leader: engine.leader, term: engine.term)
        guard now.leader != slot.reported.leader || now.term != slot.reported.term else { return }
        slot.reported = now
        onLeadershipChange(
            LeadershipChange(
                group: engine.group, leader: now.leader, term: now.term, isLocal: now.leader == config.nodeID))
    }

    /// The engine's flush closure: fsyncs on the blocking pool, `completeFlush` back on the loop.
    func runFlush(_ request: FlushRequest, slot: Slot, group: GroupID, on shard: Shard) {
        slot.flushInFlight = true
        let io = self.io
        let boundSlot = NIOLoopBound(slot, eventLoop: shard.loop)
        pool.runIfActive(eventLoop: shard.loop) { () -> FileIOError? in
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
                error = FileIOError(operation: .sync, path: request.plan.directory ?? "\(group)", errno: ECANCELED)
            }
            if let error { self.logger.error("flush of \(group) failed: \(error)") }
            if let engine = slot.engine {
                engine.completeFlush(request, error: error)
                self.noticeLeadership(slot, engine)
            }
            self.finishCloseIfIdle(slot, group: group)
        }
    }

    /// Closes a slot's engine now, or after its flush in flight.
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
        guard let engine = slot.engine else {
            promise.succeed()
            return
        }
        slot.engine = nil
        let waiting = slot.waiting.values
        slot.waiting = [:]
        for promise in waiting { promise.fail(ReplicaHostError.notRunning) }
        do throws(LogError) {
            try engine.close()
            promise.succeed()
        } catch {
            logger.error("closing the replica of \(group): \(error)")
            promise.fail(error)
        }
    }
}
