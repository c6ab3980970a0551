import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import Raft
import Records
import Replication
import Synchronization

// The cluster side of a node: the controller's replica, the published metadata view, reconciling partition
// replicas with it, forwarding admin commands to the controller, node registration, and leadership announcements.

/// Where the controller lives.
final class ControllerHandle: Sendable {
    let loop: any EventLoop
    let controller: NIOLoopBound<Controller>

    init(loop: any EventLoop, controller: NIOLoopBound<Controller>) {
        self.loop = loop
        self.controller = controller
    }
}

/// The result of a controller command as a caller sees it.
typealias ControllerResult = Result<ControllerReply, ControllerError>

/// Forwarded controller commands waiting for their reply.
struct RPCState {
    var nextId: UInt64 = 0
    var pending: [UInt64: EventLoopPromise<ControllerResult>] = [:]
}

/// Requests waiting for the applied metadata to reach some state (a created topic visible here).
struct MetadataWaiters {
    struct Waiter {
        var satisfied: @Sendable (ClusterView) -> Bool
        var promise: EventLoopPromise<Bool>
    }

    var nextId: UInt64 = 0
    var waiting: [UInt64: Waiter] = [:]
}

/// Producer ids this node may hand out, reserved from the controller a block at a time.
struct ProducerIdPool {
    var next: Int64 = 0
    var end: Int64 = 0
    var reserving = false
    var waiting: [EventLoopPromise<Int64?>] = []
}

/// Which partition replicas are open or changing on this node (on the home loop).
final class Reconciler {
    /// Open, or being opened.
    var hosted: Set<GroupID> = []
    /// The topic uid each hosted replica was opened for.
    var hostedUid: [GroupID: Int64] = [:]
    /// Being closed and removed.
    var removing: Set<GroupID> = []
    /// Directories of deleted topics were looked for (once, after catching up).
    var strayCheckDone = false
    /// The latest state reconciled.
    var latest = ClusterMetadataState()
}

/// Who leads which partition, as far as this node knows: its own replicas' knowledge, and what every peer
/// announced it leads. The highest term wins.
final class LeadershipBoard: Sendable {
    struct Table {
        /// What this node's replicas know (leader, term).
        var local: [GroupID: (leader: NodeID?, term: Term)] = [:]
        /// The groups each peer last said it leads.
        var announced: [NodeID: [GroupID: AnnouncedLeadership]] = [:]
        /// The in-sync replicas of the groups this node leads.
        var localInSync: [GroupID: [NodeID]] = [:]
        /// Bumped when this node starts or stops leading a group.
        var localLeadVersion: UInt64 = 0
    }

    let nodeID: NodeID
    let table = Mutex(Table())

    init(nodeID: NodeID) { self.nodeID = nodeID }

    func noteLocal(_ change: LeadershipChange) {
        table.withLock { table in
            let wasLeading = table.local[change.group]?.leader == nodeID
            table.local[change.group] = (change.leader, change.term)
            if wasLeading != change.isLocal { table.localLeadVersion += 1 }
        }
    }

    func forget(_ group: GroupID) {
        table.withLock { table in
            if table.local.removeValue(forKey: group)?.leader == nodeID { table.localLeadVersion += 1 }
            table.localInSync[group] = nil
        }
    }

    func noteInSync(_ group: GroupID, _ inSync: [NodeID]?) {
        table.withLock { table in
            table.localInSync[group] = inSync
            table.localLeadVersion += 1
        }
    }

    func noteAnnounced(_ list: [AnnouncedLeadership], from peer: NodeID) {
        var led: [GroupID: AnnouncedLeadership] = [:]
        for entry in list { led[entry.group] = entry }
        table.withLock { $0.announced[peer] = led }
    }

    /// The groups this node leads, with their terms and in-sync replicas.
    func ledLocally() -> (version: UInt64, list: [AnnouncedLeadership]) {
        table.withLock { table in
            let list = table.local.compactMap { group, known -> AnnouncedLeadership? in
                guard known.leader == nodeID else { return nil }
                return AnnouncedLeadership(group: group, term: known.term, inSync: table.localInSync[group] ?? [])
            }.sorted { $0.group < $1.group }
            return (table.localLeadVersion, list)
        }
    }

    /// The best-known leader of `group` with its in-sync replicas (empty when unknown), or nil. Announcements of
    /// peers that `isReachable` says are cut off are not believed: a dead leader is not named to clients once its
    /// link is gone.
    func leader(of group: GroupID, isReachable: (NodeID) -> Bool = { _ in true })
        -> (leader: NodeID, term: Term, inSync: [NodeID])?
    {
        table.withLock { table in
            var best: (leader: NodeID, term: Term, inSync: [NodeID])?
            var bestTerm = Term.zero
            if let known = table.local[group] {
                bestTerm = known.term
                if let leader = known.leader {
                    let inSync = leader == nodeID ? table.localInSync[group] ?? [] : table.announced[leader]?[group]?.inSync ?? []
                    best = (leader, known.term, inSync)
                }
            }
            for (peer, led) in table.announced {
                guard let entry = led[group], entry.term > bestTerm || (entry.term == bestTerm && best == nil),
                    isReachable(peer)
                else { continue }
                bestTerm = entry.term
                best = (peer, entry.term, entry.inSync)
            }
            return best
        }
    }

    /// The leader of `group` this node's own replica knows of.
    func localLeader(of group: GroupID) -> NodeID? {
        table.withLock { $0.local[group]?.leader }
    }
}

extension Broker {
    // MARK: The controller

    func openController() -> EventLoopFuture<Void> {
        let group = Controller.group
        let directory = partitionDirectory(group)
        let logConfig = Controller.logConfig(flushPolicy: config.flushPolicy)
        let stateMachine = ControllerStateMachine(
            topicDefaults: config.topicDefaults, defaultPartitions: config.defaultPartitions,
            defaultReplicationFactor: config.defaultReplicationFactor)
        let io = environment.fileIO
        let single = voters == [nodeID]
        return host.addGroup(group, voters: voters, campaign: single) { context in
            let engine = try ReplicaEngine<UInt64>(
                group: group, configuration: context.configuration, directory: directory, logConfig: logConfig,
                io: io, transport: context.transport, flush: context.flush, seed: context.seed, now: context.now)
            if !engine.recovery.wasClean { self.logger.notice("metadata log recovered: \(engine.recovery)") }
            let controller = Controller(engine: engine, stateMachine: stateMachine, now: context.now)
            controller.onMetadataChanged = { state in self.metadataChanged(state) }
            self.controllerHandle.withLock {
                $0 = ControllerHandle(loop: context.loop, controller: NIOLoopBound(controller, eventLoop: context.loop))
            }
            return controller
        }
    }

    /// The controller this node knows of (the leader of group 0), or nil.
    public var knownControllerId: Int32? { controllerId }

    /// The controller this node knows of (the leader of group 0), or nil.
    var controllerId: Int32? {
        leaderships.localLeader(of: Controller.group).map { Int32(truncatingIfNeeded: $0.value) }
    }

    // MARK: Applying the metadata

    /// The controller applied committed records (on the home loop): publish, wake waiters, reconcile replicas.
    func metadataChanged(_ state: ClusterMetadataState) {
        var configs: [String: TopicConfig] = [:]
        for name in state.topicNames {
            guard let topic = state.topic(name) else { continue }
            do throws(TopicConfigError) {
                configs[name] = try config.topicDefaults.applying(topic.overrides)
            } catch {
                logger.warning("topic \(name): stored config refused (\(error)); using the defaults")
                configs[name] = config.topicDefaults
            }
        }
        let me = config.nodeId
        let published = view.withLock { view -> ClusterView in
            view.state = state
            view.topicConfigs = configs
            if !view.caughtUp, state.nodes[me]?.incarnation == incarnation {
                view.caughtUp = true
                logger.info("caught up with the cluster metadata: \(state.topicNames.count) topics")
            }
            view.version += 1
            return view
        }
        let ready = metadataWaiters.withLock { waiters -> [EventLoopPromise<Bool>] in
            var ready: [EventLoopPromise<Bool>] = []
            for id in waiters.waiting.keys.sorted() {
                guard let waiter = waiters.waiting[id], waiter.satisfied(published) else { continue }
                ready.append(waiter.promise)
                waiters.waiting[id] = nil
            }
            return ready
        }
        for promise in ready { promise.succeed(true) }
        if published.caughtUp { reconcile(state) }
    }

    /// Waits until the published view satisfies `condition`, at most `timeoutMs`; true if it did.
    func waitForView(
        timeoutMs: Int64, on loop: any EventLoop, _ condition: @escaping @Sendable (ClusterView) -> Bool
    ) -> EventLoopFuture<Bool> {
        if condition(view.withLock({ $0 })) { return loop.makeSucceededFuture(true) }
        let promise = loop.makePromise(of: Bool.self)
        let id = metadataWaiters.withLock { waiters -> UInt64 in
            waiters.nextId += 1
            waiters.waiting[waiters.nextId] = .init(satisfied: condition, promise: promise)
            return waiters.nextId
        }
        // The view may have changed between the first check and the registration.
        if condition(view.withLock({ $0 })), metadataWaiters.withLock({ $0.waiting.removeValue(forKey: id) }) != nil {
            promise.succeed(true)
        }
        loop.scheduleTask(in: .milliseconds(max(0, timeoutMs))) {
            if self.metadataWaiters.withLock({ $0.waiting.removeValue(forKey: id) }) != nil { promise.succeed(false) }
        }
        return promise.futureResult
    }

    // MARK: Reconciling partition replicas

    /// Opens the replicas the metadata assigns to this node and closes (and deletes) those it no longer does.
    /// Runs on the home loop; each open or removal reports back there.
    func reconcile(_ state: ClusterMetadataState) {
        homeLoop.preconditionInEventLoop()
        let reconciler = self.reconciler.value
        reconciler.latest = state
        guard !isShutDown.load(ordering: .sequentiallyConsistent) else { return }
        let me = config.nodeId
        var desired: [GroupID: (replicas: [Int32], uid: Int64)] = [:]
        for (topic, partition) in state.partitions(on: me) {
            guard let metadata = state.topic(topic) else { continue }
            desired[GroupID(topic: topic, partition: partition)] = (metadata.assignment[Int(partition)], metadata.uid)
        }
        if !reconciler.strayCheckDone {
            reconciler.strayCheckDone = true
            removeStrayDirectories()
        }
        // A replica whose topic was deleted, or deleted and created again (a node that was away applies both
        // records at once: the uid tells), is closed and its directory removed; the new one opens afterwards.
        for group in reconciler.hosted.sorted() where desired[group]?.uid != reconciler.hostedUid[group] {
            reconciler.hosted.remove(group)
            reconciler.hostedUid[group] = nil
            reconciler.removing.insert(group)
            removeReplica(group)
        }
        for (group, wanted) in desired.sorted(by: { $0.key < $1.key })
        where !reconciler.hosted.contains(group) && !reconciler.removing.contains(group) {
            reconciler.hosted.insert(group)
            reconciler.hostedUid[group] = wanted.uid
            openReplica(group, replicas: wanted.replicas, uid: wanted.uid)
        }
    }

    func openReplica(_ group: GroupID, replicas: [Int32], uid: Int64) {
        let voters = replicas.map { NodeID(UInt64($0)) }
        let directory = partitionDirectory(group)
        let topicConfig = view.withLock { $0.topicConfigs[group.topic] } ?? config.topicDefaults
        let logConfig = topicConfig.logConfig(flushPolicy: config.flushPolicy)
        let io = environment.fileIO
        let clock = environment.clock
        let logger = self.logger
        let retentionMs = config.retentionCheckIntervalMs
        let groupConfig = config.groupCoordinator
        let nodeId = config.nodeId
        // A group of one elects itself at once. The preferred leader (first replica) of a larger group campaigns
        // shortly after opening, if it has heard of no leader by then: a new partition gets its leader without
        // waiting for an election timeout (the pause lets the other replicas apply the creation and open), and
        // after a restart pre-vote keeps it from disturbing a working leader.
        let campaignDelayTicks = Int64(2)
        if voters.count > 1, voters.first == nodeID {
            let host = self.host
            host.loop(for: group).scheduleTask(in: .milliseconds(campaignDelayTicks * config.raft.tickIntervalMs)) {
                _ = host.withReplica(group) { replica in
                    if replica.leader == nil { replica.campaign() }
                }
            }
        }
        host.addGroup(group, voters: voters, campaign: voters.count == 1, incarnation: uid) { context in
            try PartitionDirectoryIdentity.prepare(directory, uid: uid, io: io, logger: logger)
            let groups =
                group.topic == OffsetsTopic.name
                ? GroupHost(
                    partition: group.partition, config: groupConfig, nodeId: nodeId, logger: logger) : nil
            let replica = try PartitionReplica(
                group: group, directory: directory, logConfig: logConfig, io: io, context: context, clock: clock,
                logger: logger, groups: groups)
            let bound = NIOLoopBound(replica, eventLoop: context.loop)
            let handle = PartitionHandle(group: group, loop: context.loop, replica: bound)
            self.partitions.withLock { $0[group] = handle }
            let retention = context.loop.scheduleRepeatedTask(
                initialDelay: .milliseconds(retentionMs), delay: .milliseconds(retentionMs)
            ) { task in
                if bound.value.isClosed { task.cancel() } else { bound.value.applyRetention() }
            }
            _ = retention
            return replica
        }.hop(to: homeLoop).whenComplete { result in
            if case .failure(let error) = result {
                self.logger.error("cannot open the replica of \(group): \(error)")
                self.reconciler.value.hosted.remove(group)
                self.reconciler.value.hostedUid[group] = nil
            }
        }
    }

    func removeReplica(_ group: GroupID) {
        partitions.withLock { _ = $0.removeValue(forKey: group) }
        leaderships.forget(group)
        let directory = partitionDirectory(group)
        let remove = environment.removeDirectory
        host.removeGroup(group).flatMapError { _ in self.homeLoop.makeSucceededVoidFuture() }.flatMap {
            self.environment.blocking.run(on: self.homeLoop) { try remove(directory) }
        }.hop(to: homeLoop).whenComplete { result in
            if case .failure(let error) = result {
                self.logger.error("removing the directory of \(group) failed: \(error)")
            } else {
                self.logger.info("replica of \(group) removed")
            }
            let reconciler = self.reconciler.value
            reconciler.removing.remove(group)
            // The topic may have been created again meanwhile.
            self.reconcile(reconciler.latest)
        }
    }

    /// Partition directories of topics deleted while this node was down (or whose deletion was interrupted) are
    /// removed once the node has caught up, so that a topic created again later starts empty.
    ///
    /// The directory is listed on the blocking pool, but which names are strays is decided back on the home
    /// loop against the reconciler as it is then: a topic created while the listing ran has its replicas open
    /// (or opening) by then, and their directories must stay. Each stray is marked as being removed, so that
    /// reconcile opens no replica in it until it is gone (found by the broker simulation, seed 312: a replica
    /// opened between the catch-up and the listing lost its directory).
    func removeStrayDirectories() {
        let io = environment.fileIO
        let remove = environment.removeDirectory
        let root = config.dataDirectory
        let logger = self.logger
        let me = config.nodeId
        environment.blocking.run(on: homeLoop) { () -> [String] in
            do throws(FileIOError) {
                return try io.listDirectory(root)
            } catch {
                return []
            }
        }.whenSuccess { names in
            let reconciler = self.reconciler.value
            let assigned = Set(
                reconciler.latest.partitions(on: me).map { GroupID(topic: $0.topic, partition: $0.partition) })
            let strays = names.compactMap(PartitionDirectoryIdentity.group(named:)).filter { group in
                group != Controller.group && !assigned.contains(group) && !reconciler.hosted.contains(group)
                    && !reconciler.removing.contains(group)
            }
            guard !strays.isEmpty else { return }
            for group in strays { reconciler.removing.insert(group) }
            self.environment.blocking.run(on: self.homeLoop) { () -> [GroupID] in
                var removed: [GroupID] = []
                for group in strays {
                    do {
                        try remove(root + "/" + group.description)
                        removed.append(group)
                    } catch {
                        logger.error("removing stray partition directory \(group) failed: \(error)")
                    }
                }
                return removed
            }.whenComplete { result in
                if case .success(let removed) = result {
                    for group in removed { logger.notice("removed \(group): its topic no longer exists") }
                }
                for group in strays { reconciler.removing.remove(group) }
                // A topic of one of these names may have been created meanwhile.
                self.reconcile(reconciler.latest)
            }
        }
    }

    // MARK: Controller commands

    /// Runs `command` on the controller, wherever it is: locally when this node leads group 0, else forwarded to
    /// the leader over the cluster link. Retries (the controller moving, no leader yet) until `timeoutMs` have
    /// passed; nil then.
    func submitToController(_ command: ControllerCommand, timeoutMs: Int64, on loop: any EventLoop)
        -> EventLoopFuture<ControllerResult?>
    {
        let promise = loop.makePromise(of: ControllerResult?.self)
        let deadline = environment.clock.now().value + max(0, timeoutMs)
        @Sendable func attempt(_ round: Int) {
            let remaining = deadline - environment.clock.now().value
            guard remaining > 0, !isShutDown.load(ordering: .sequentiallyConsistent) else {
                promise.succeed(nil)
                return
            }
            let retry: @Sendable () -> Void = {
                let backoff = Int64(min(200, 20 * (1 << min(round, 4))))
                loop.scheduleTask(in: .milliseconds(min(backoff, max(1, remaining)))) { attempt(round + 1) }
            }
            callController(command, timeoutMs: min(remaining, 5_000), on: loop).whenComplete { result in
                switch result {
                case .success(.failure(.notController)), .failure: retry()
                case .success(let answer): promise.succeed(answer)
                }
            }
        }
        attempt(0)
        return promise.futureResult
    }

    /// One attempt: the local controller if it leads, else the leader this node knows of.
    func callController(_ command: ControllerCommand, timeoutMs: Int64, on loop: any EventLoop)
        -> EventLoopFuture<ControllerResult>
    {
        guard let handle = controllerHandle.withLock({ $0 }) else {
            return loop.makeSucceededFuture(.failure(.notController(controller: nil)))
        }
        let now = environment.clock.now()
        return handle.loop.flatSubmit { () -> EventLoopFuture<ControllerResult> in
            let controller = handle.controller.value
            if controller.isController {
                let promise = handle.loop.makePromise(of: ControllerResult.self)
                controller.submit(command, now: now) { promise.succeed($0) }
                return promise.futureResult
            }
            guard let leader = controller.engine.leader, leader != self.nodeID else {
                return handle.loop.makeSucceededFuture(.failure(.notController(controller: nil)))
            }
            return self.forward(command, to: leader, timeoutMs: timeoutMs, on: handle.loop)
        }.hop(to: loop)
    }

    func forward(_ command: ControllerCommand, to leader: NodeID, timeoutMs: Int64, on loop: any EventLoop)
        -> EventLoopFuture<ControllerResult>
    {
        let promise = loop.makePromise(of: ControllerResult.self)
        let id = rpc.withLock { state -> UInt64 in
            state.nextId += 1
            state.pending[state.nextId] = promise
            return state.nextId
        }
        let body = BrokerRPCCodec.encode(.controllerCommand(command))
        environment.peers.send(.rpc(PeerRPC(kind: .request, id: id, from: nodeID, to: leader, body: body)), to: leader)
        loop.scheduleTask(in: .milliseconds(max(1, timeoutMs))) {
            if let waiting = self.rpc.withLock({ $0.pending.removeValue(forKey: id) }) {
                waiting.succeed(.failure(.notController(controller: nil)))
            }
        }
        return promise.futureResult
    }

    // MARK: Frames from peers

    /// Frames a peer sent (one socket read of them, in order), on the connection's event loop: Raft messages go
    /// to the replicas, requests between brokers are served.
    public func deliver(_ frames: [PeerFrame], from peer: NodeID) {
        var envelopes: [ReplicationMessage] = []
        for frame in frames {
            switch frame {
            case .message(let envelope): envelopes.append(envelope)
            case .heartbeats(let beats): envelopes += beats.split()
            case .rpc(let call): serve(call, from: peer)
            }
        }
        if !envelopes.isEmpty { host.deliver(envelopes, from: peer) }
    }

    func serve(_ call: PeerRPC, from peer: NodeID) {
        switch call.kind {
        case .reply:
            guard let promise = rpc.withLock({ $0.pending.removeValue(forKey: call.id) }) else { return }
            do throws(BrokerRPCError) {
                promise.succeed(try BrokerRPCCodec.decodeReply(call.body))
            } catch {
                logger.warning("node \(peer) sent a reply that does not decode: \(error)")
                promise.succeed(.failure(.notController(controller: nil)))
            }
        case .request:
            let request: BrokerRPC
            do throws(BrokerRPCError) {
                request = try BrokerRPCCodec.decodeRequest(call.body)
            } catch {
                logger.warning("node \(peer) sent a request that does not decode: \(error)")
                return
            }
            switch request {
            case .leaderships(let list):
                leaderships.noteAnnounced(list, from: peer)
            case .controllerCommand(let command):
                guard let handle = controllerHandle.withLock({ $0 }) else { return }
                let now = environment.clock.now()
                let me = nodeID
                let peers = environment.peers
                handle.loop.execute {
                    let controller = handle.controller.value
                    controller.submit(command, now: now) { result in
                        let body = BrokerRPCCodec.encodeReply(result)
                        peers.send(.rpc(PeerRPC(kind: .reply, id: call.id, from: me, to: peer, body: body)), to: peer)
                    }
                }
            }
        }
    }

    // MARK: Timers: registration and leadership announcements

    func startTimers() {
        let loop = homeLoop
        let registration = NodeRegistration(
            id: config.nodeId, clientHost: config.advertisedHost, clientPort: config.advertisedPort,
            clusterHost: config.clusterHost, clusterPort: config.clusterPort, incarnation: incarnation)
        let registering = Mutex(false)
        let register = loop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(250)) { task in
            if self.isCaughtUp || self.isShutDown.load(ordering: .sequentiallyConsistent) {
                task.cancel()
                return
            }
            guard registering.withLock({ busy in
                defer { busy = true }
                return !busy
            }) else { return }
            self.submitToController(.registerNode(registration), timeoutMs: 2_000, on: loop).whenComplete { result in
                registering.withLock { $0 = false }
                if case .success(.some(.failure(let error))) = result {
                    self.logger.error("registration refused by the controller: \(error)")
                }
            }
        }
        let announcedVersion = NIOLoopBoundBox<(UInt64, Int64)>.makeBoxSendingValue((UInt64.max, 0), eventLoop: loop)
        let interval = max(config.raft.tickIntervalMs, 20)
        let announce = loop.scheduleRepeatedTask(initialDelay: .milliseconds(interval), delay: .milliseconds(interval))
        { _ in
            let (version, list) = self.leaderships.ledLocally()
            let now = self.environment.clock.now().value
            let (lastVersion, lastAt) = announcedVersion.value
            // Changes go out within a tick; the whole set again every 2 s, for nodes that (re)connected since.
            guard version != lastVersion || now - lastAt >= 2_000 else { return }
            announcedVersion.value = (version, now)
            let body = BrokerRPCCodec.encode(.leaderships(list))
            for peer in self.voters where peer != self.nodeID {
                self.environment.peers.send(
                    .rpc(PeerRPC(kind: .request, id: 0, from: self.nodeID, to: peer, body: body)), to: peer)
            }
        }
        timers.withLock { $0 += [register, announce] }
    }

    /// The leader of `group` as this node best knows it (its own replica's knowledge, or what a peer it is linked
    /// to announced).
    func knownLeader(of group: GroupID) -> (leader: NodeID, term: Term, inSync: [NodeID])? {
        let peers = environment.peers
        guard let known = leaderships.leader(of: group, isReachable: { peers.isConnected(to: $0) }) else { return nil }
        // A leader this node has lost its link to is likely dead: LEADER_NOT_AVAILABLE makes clients ask again
        // soon (librdkafka's fast metadata refresh) instead of waiting at a dead address.
        guard known.leader == nodeID || peers.isConnected(to: known.leader) else { return nil }
        return known
    }

    /// The link to `peer` closed (the server's cluster connections say so): replicas following it prepare to
    /// elect a new leader at once instead of after an election timeout.
    public func peerUnreachable(_ peer: NodeID) {
        host.peerUnreachable(peer)
    }

    // MARK: Status

    /// Every replica of this node, with its role, term and offsets (for `cluster/status` and tests).
    public func replicaStatuses(on loop: any EventLoop) -> EventLoopFuture<[ReplicaStatus]> {
        host.statuses(on: loop)
    }
}

/// A partition directory remembers which incarnation of its topic it belongs to (the topic's `uid` in the
/// metadata): a directory left behind by a deleted topic of the same name is wiped before a new replica uses it.
enum PartitionDirectoryIdentity {
    static let fileName = "topic.uid"

    /// The group a directory named `<topic>-<partition>` belongs to, or nil for any other name.
    static func group(named name: String) -> GroupID? {
        guard looksLikePartition(name), let dash = name.lastIndex(of: "-"),
            let partition = Int32(name[name.index(after: dash)...])
        else { return nil }
        return GroupID(topic: String(name[..<dash]), partition: partition)
    }

    /// True for names of the form `<topic>-<partition>`.
    static func looksLikePartition(_ name: String) -> Bool {
        guard let dash = name.lastIndex(of: "-"), dash != name.startIndex else { return false }
        let digits = name[name.index(after: dash)...]
        return !digits.isEmpty && digits.allSatisfy(\.isNumber)
    }

    /// Creates the directory with its identity file, or checks the identity of an existing one (emptying it
    /// first when it belongs to another incarnation of the topic).
    static func prepare(_ directory: String, uid: Int64, io: any FileIO, logger: Logger) throws {
        try io.makeDirectory(directory)
        let path = directory + "/" + fileName
        let expected = ByteBuffer(string: "\(uid)\n")
        if let found = try io.readWholeFile(path, countMax: 64) {
            guard found != expected else { return }
            logger.notice("\(directory) belongs to an earlier topic of the same name: emptying it")
            for name in try io.listDirectory(directory) { try io.remove(directory + "/" + name) }
        } else if try !io.listDirectory(directory).isEmpty {
            // Files without an identity: written before identities existed, or a crash between mkdir and the
            // identity write (then empty anyway). Keep them.
            logger.info("\(directory) has no topic identity yet: adopting it")
        }
        try io.writeAtomically(expected, to: path, directory: directory)
    }
}
