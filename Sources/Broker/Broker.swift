// Broker: one node's logic, with no sockets and no wall clock.
//
// What this module owns: the node's Raft replicas (`ReplicaHost`): the controller (group 0, `Controller`, whose
// log holds the cluster metadata) and one `PartitionReplica` per partition replica assigned to this node; the
// published view of the cluster metadata that every request reads; the reconciliation that opens and removes
// partition replicas as the metadata log says; forwarding of admin commands to the controller over the cluster
// links; the leaderships each node announces to the others; and the Kafka API handlers: a decoded request in,
// a `BrokerResponse` out.
//
// What it must never do: open a socket or a file other than through its seams (`BrokerEnvironment`: clock,
// blocking pool, `FileIO`, `PeerTransport`), read the wall clock, or block an event loop on an fsync: flushes run
// on the blocking pool while the partition goes on appending (group commit).
//
// Threads: `Broker` is `Sendable` and is called from every connection's event loop; the shared tables sit
// behind mutexes touched once or twice per request. Each replica lives on one event loop and runs to completion
// there; a request hops once onto it and its answer hops back to the connection's loop.
//
// A single node is a cluster of one voter: the same code path, with Raft groups of one that commit once their
// entries are fsynced.
//
// Main types: `Broker`, `BrokerConfig`, `TopicConfig`, `BrokerResponse`, `BrokerEnvironment` (the seams),
// `PartitionReplica`, `ReplicaHost`, `Controller`, `ProducerStateTable`.

import KafkaProtocol
import LogStorage
import ConsumerGroups
import Logging
import NIOCore
import Raft
import Records
import Replication
import Synchronization

/// What the server must do with the answer to one request.
public enum BrokerResponse: Sendable {
    /// Write this frame.
    case frame(ByteBuffer)
    /// Write a Fetch response: `parts` in order, each `.records(length, token)` replaced by
    /// the bytes of `records[token]` (file slices, sent with sendfile).
    case fetch(parts: [FetchResponsePart], records: [Int: [LogSlice]])
    /// Write nothing (Produce with acks=0 that succeeded).
    case none
    /// Close the connection, logging `reason` (Produce with acks=0 that failed).
    case close(reason: String)
}

/// The broker was shut down: the request is refused (its connection is closed).
public struct BrokerShutDownError: Error, CustomStringConvertible {
    public var description: String { "the broker is shutting down" }
}

/// One partition replica of this node as the request path finds it: where it lives.
final class PartitionHandle: Sendable {
    let group: GroupID
    let loop: any EventLoop
    let replica: NIOLoopBound<PartitionReplica>

    init(group: GroupID, loop: any EventLoop, replica: NIOLoopBound<PartitionReplica>) {
        self.group = group
        self.loop = loop
        self.replica = replica
    }

    /// Runs `body` on the replica's loop and brings the answer back to `loop`.
    func run<Value: Sendable>(on loop: any EventLoop, _ body: @escaping @Sendable (PartitionReplica) -> Value)
        -> EventLoopFuture<Value>
    {
        let replica = self.replica
        return self.loop.submit { body(replica.value) }.hop(to: loop)
    }

    /// Runs `body`, which answers with a future on the replica's loop, and brings the answer back to `loop`.
    func flatRun<Value: Sendable>(
        on loop: any EventLoop, _ body: @escaping @Sendable (PartitionReplica) -> EventLoopFuture<Value>
    ) -> EventLoopFuture<Value> {
        let replica = self.replica
        return self.loop.flatSubmit { body(replica.value) }.hop(to: loop)
    }
}

/// The cluster metadata as this node has applied it, with what requests derive from it.
struct ClusterView: Sendable {
    /// The applied metadata.
    var state = ClusterMetadataState()
    /// Each topic's effective configuration (broker defaults with its overrides).
    var topicConfigs: [String: TopicConfig] = [:]
    /// True once this node's own registration of this start has been applied: everything committed before it
    /// has been applied too, so the view is as current as the controller's was then.
    var caughtUp = false
    /// Bumped on every change.
    var version: UInt64 = 0
}

/// One Kafka node: its replicas, the cluster view, and the API handlers.
public final class Broker: Sendable {
    /// The node's settings.
    public let config: BrokerConfig
    let environment: BrokerEnvironment
    let group: any EventLoopGroup
    let logger: Logger
    let host: ReplicaHost
    /// Drawn at each start: a restart re-registers (a record everybody applies) even with the same addresses.
    let incarnation: Int64
    let waitIds = Atomic<UInt64>(0)
    /// Set by `shutdown()`: from then on every request is refused.
    let isShutDown = Atomic<Bool>(false)

    let view = Mutex(ClusterView())
    /// This node's partition replicas that are open, by group.
    let partitions = Mutex<[GroupID: PartitionHandle]>([:])
    let leaderships: LeadershipBoard
    let controllerHandle = Mutex<ControllerHandle?>(nil)
    let rpc = Mutex(RPCState())
    let metadataWaiters = Mutex(MetadataWaiters())
    let producerIds = Mutex(ProducerIdPool())
    let reconciler: NIOLoopBoundBox<Reconciler>
    /// The loop the controller, the reconciler and the node's timers run on.
    let homeLoop: any EventLoop
    let timers = Mutex<[RepeatedTask]>([])
    /// True while this node asks the controller for `__consumer_offsets`.
    let offsetsTopicCreation = Mutex(false)

    /// Producer ids are reserved from the controller in blocks of this size.
    public static let producerIdBlockSize: Int64 = 1000

    /// Creates a node whose replicas live on `group`'s event loops.
    public init(config: BrokerConfig, environment: BrokerEnvironment, group: any EventLoopGroup, logger: Logger) {
        self.config = config
        self.environment = environment
        self.group = group
        self.logger = logger
        var random = SeededRandom(seed: environment.seed ^ 0x5EED_1234)
        self.incarnation = Int64(bitPattern: random.next() & 0x7fff_ffff_ffff_ffff)
        let board = LeadershipBoard(nodeID: NodeID(UInt64(config.nodeId)))
        self.leaderships = board
        self.host = ReplicaHost(
            nodeID: NodeID(UInt64(config.nodeId)), timings: config.raft, seed: environment.seed, group: group,
            peers: environment.peers, blocking: environment.blocking, io: environment.fileIO,
            clock: environment.clock, logger: logger,
            onLeadershipChange: { change in
                let leader = change.leader.map { "\($0.value)" } ?? "unknown"
                logger.debug("leader of \(change.group) now \(leader) in term \(change.term.value)")
                board.noteLocal(change)
            },
            onInSyncChange: { board.noteInSync($0, $1) })
        self.homeLoop = host.loop(for: Controller.group)
        self.reconciler = NIOLoopBoundBox.makeBoxSendingValue(Reconciler(), eventLoop: homeLoop)
    }

    /// This node's id as Raft knows it.
    var nodeID: NodeID { NodeID(UInt64(config.nodeId)) }

    /// The controller's voters (every node of the cluster).
    var voters: [NodeID] { config.voters.map { NodeID(UInt64($0)) } }

    // MARK: Start and stop

    /// Starts the replica host, opens the controller's replica (recovering its log), and starts registering this
    /// node with the controller. Partition replicas open as the replayed metadata assigns them. Call once,
    /// before serving.
    public func start() -> EventLoopFuture<Void> {
        let loop = homeLoop
        return host.start(on: loop).flatMap {
            self.openController()
        }.map {
            self.startTimers()
            self.logger.info(
                "node \(self.config.nodeId) started: voters \(self.config.voters), incarnation \(self.incarnation)")
        }
    }

    /// True once the node has applied its own registration: its view of the cluster is current, and its
    /// partition replicas are opening.
    public var isCaughtUp: Bool { view.withLock { $0.caughtUp } }

    /// Waits (polling on the node's loop) until `isCaughtUp`, or fails after `timeoutMs`.
    public func waitUntilCaughtUp(timeoutMs: Int64) -> EventLoopFuture<Void> {
        let promise = homeLoop.makePromise(of: Void.self)
        let deadline = environment.clock.now().value + timeoutMs
        @Sendable func poll() {
            if isCaughtUp {
                promise.succeed(())
            } else if environment.clock.now().value >= deadline {
                promise.fail(BrokerStartError(description: "the node did not catch up with the cluster metadata"))
            } else {
                homeLoop.scheduleTask(in: .milliseconds(10)) { poll() }
            }
        }
        homeLoop.execute { poll() }
        return promise.futureResult
    }

    /// Before a graceful shutdown: hands every leadership of this node (partitions and the controller) to
    /// another voter, waiting at most `timeoutMs`; completes with the groups still led.
    public func transferLeadershipsAway(timeoutMs: Int64) -> EventLoopFuture<[String]> {
        host.transferLeadershipsAway(timeoutMs: timeoutMs, on: homeLoop).map { $0.map(\.description) }
    }

    /// Closes every replica: each flushes (on the blocking pool) and closes its log; the produce requests
    /// waiting for an acknowledgement are answered and the waiting fetches are woken (they then answer at once).
    /// Requests that arrive afterwards are refused.
    public func shutdown() -> EventLoopFuture<Void> {
        isShutDown.store(true, ordering: .sequentiallyConsistent)
        for timer in timers.withLock({ timers -> [RepeatedTask] in
            defer { timers = [] }
            return timers
        }) {
            timer.cancel()
        }
        partitions.withLock { $0.removeAll() }
        controllerHandle.withLock { $0 = nil }
        let pending = rpc.withLock { state -> [EventLoopPromise<ControllerResult>] in
            defer { state.pending = [:] }
            return state.pending.keys.sorted().compactMap { state.pending[$0] }
        }
        for promise in pending { promise.succeed(.failure(.notController(controller: nil))) }
        return host.shutdown(on: homeLoop)
    }

    func partitionDirectory(_ group: GroupID) -> String {
        config.dataDirectory + "/" + group.topic + "-" + String(group.partition)
    }

    func partition(_ topic: String, _ index: Int32) -> PartitionHandle? {
        partitions.withLock { $0[GroupID(topic: topic, partition: index)] }
    }

    // MARK: Dispatch

    /// Answers one decoded request from a client at `clientHost`. Called on the connection's event loop `loop`; the
    /// future completes there.
    public func handle(_ request: DecodedRequest, clientHost: String = "", on loop: any EventLoop)
        -> EventLoopFuture<BrokerResponse>
    {
        guard !isShutDown.load(ordering: .sequentiallyConsistent) else {
            return loop.makeFailedFuture(BrokerShutDownError())
        }
        let header = request.header
        let version = header.apiVersion
        let id = header.correlationId
        @Sendable func frame<M: KafkaMessage>(_ body: M) -> BrokerResponse {
            .frame(KafkaResponseEncoder.encodeFrame(body, version: version, correlationId: id))
        }
        func now<M: KafkaMessage>(_ body: M) -> EventLoopFuture<BrokerResponse> {
            loop.makeSucceededFuture(frame(body))
        }
        switch request.request {
        case .apiVersions:
            return now(ApiVersionsResponse.keel)
        case .metadata(let body):
            return metadata(body, on: loop).map { frame($0) }
        case .produce(let body):
            return produce(body, correlationId: id, version: version, on: loop)
        case .fetch(let body):
            return fetch(body, correlationId: id, on: loop)
        case .listOffsets(let body):
            return listOffsets(body, on: loop).map { frame($0) }
        case .createTopics(let body):
            return createTopics(body, on: loop).map { frame($0) }
        case .deleteTopics(let body):
            return deleteTopics(body, on: loop).map { frame($0) }
        case .describeConfigs(let body):
            return now(describeConfigs(body))
        case .initProducerId(let body):
            return initProducerId(body, on: loop).map { frame($0) }
        case .findCoordinator, .joinGroup, .syncGroup, .heartbeat, .leaveGroup, .offsetCommit, .offsetFetch,
            .describeGroups, .listGroups, .deleteGroups:
            return groups(
                request.request, clientId: header.clientId ?? "", clientHost: clientHost, version: version,
                correlationId: id, on: loop)
        }
    }
}

/// The node could not start.
public struct BrokerStartError: Error, CustomStringConvertible {
    /// One line.
    public var description: String
}
