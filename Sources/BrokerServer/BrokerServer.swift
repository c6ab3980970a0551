// BrokerServer: the edge of a node: the NIO listener for Kafka clients, POSIX files,
// the real clock, signals and graceful shutdown.
//
// What this module owns: `BrokerService` (a swift-service-lifecycle `Service` that starts
// the event loops, the blocking pool, the cluster links (`PeerNetwork`), the broker and the
// client listener, and on SIGTERM/SIGINT hands its leaderships to other nodes, stops
// accepting, closes connections, flushes and closes every log), the per-connection
// `KafkaConnectionHandler` (framing, in-order answers to pipelined requests, file regions
// for fetches), and the real implementations of the broker's seams (`SystemClock`,
// `ThreadPoolExecutor`, `PeerNetwork` as the `PeerTransport`, `DataDirectory`).
//
// What it must never do: hold protocol logic (that is `Broker`'s), or block an event loop
// on an fsync (flushes and metadata writes run on the blocking pool).
//
// Main types: `BrokerServerConfig`, `BrokerService`, `PeerNetwork`.

import Broker
import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import NIOPosix
import Raft
import Replication
import ServiceLifecycle
import Synchronization
import UnixSignals

/// How to run one node: the broker's settings plus where to listen and how many threads.
public struct BrokerServerConfig: Sendable {
    /// The broker's settings. Its advertised port 0 means "the port actually bound".
    public var broker: BrokerConfig
    /// The address to bind.
    public var listenHost: String
    /// The port to bind; 0 picks a free one (printed on standard output).
    public var listenPort: Int
    /// The cluster port's address (`--cluster-listen`); port 0 picks a free one (only for a single voter).
    public var clusterListen: PeerAddress
    /// Every voter and its cluster address (`--voters`); nil for a cluster of this node alone.
    public var voters: VoterList?
    /// Event loop threads (`--threads`).
    public var eventLoopThreads: Int
    /// Threads of the blocking pool (fsync, directory removal).
    public var blockingThreads: Int
    /// How long SIGTERM waits for this node's leaderships to move to other nodes, in milliseconds.
    public var leadershipTransferTimeoutMs: Int64

    /// One node on 127.0.0.1:9092 with one event loop per core.
    public init(
        broker: BrokerConfig = BrokerConfig(),
        listenHost: String = "127.0.0.1",
        listenPort: Int = 9092,
        clusterListen: PeerAddress = PeerAddress(host: "127.0.0.1", port: 0),
        voters: VoterList? = nil,
        eventLoopThreads: Int = System.coreCount,
        blockingThreads: Int = 2,
        leadershipTransferTimeoutMs: Int64 = 5_000
    ) {
        self.broker = broker
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.clusterListen = clusterListen
        self.voters = voters
        self.eventLoopThreads = eventLoopThreads
        self.blockingThreads = blockingThreads
        self.leadershipTransferTimeoutMs = leadershipTransferTimeoutMs
    }

    /// True when other nodes are named: the node talks over the cluster port.
    var hasPeers: Bool { (voters?.addresses.count ?? 1) > 1 }
}

extension PeerNetwork: PeerTransport {}

/// One Kafka node as a service: runs until graceful shutdown, then closes everything cleanly.
public final class BrokerService: Service {
    let config: BrokerServerConfig
    let logger: Logger
    let connections = Mutex<[ObjectIdentifier: any Channel]>([:])
    let inFlight = InFlightRequests()

    /// A node with `config`, logging to `logger`.
    public init(config: BrokerServerConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    /// Runs the node under a service group that turns SIGTERM and SIGINT into graceful shutdown.
    public static func runUntilSignalled(config: BrokerServerConfig, logger: Logger) async throws {
        let service = BrokerService(config: config, logger: logger)
        let group = ServiceGroup(
            services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        try await group.run()
    }

    /// Writes `line` to standard output at once (unbuffered), for whoever started the process.
    static func announce(_ line: String) {
        var bytes = Array(line.utf8)
        _ = write(STDOUT_FILENO, &bytes, bytes.count)
    }

    /// Starts the node and serves until graceful shutdown.
    public func run() async throws {
        try config.broker.validate()
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, config.eventLoopThreads))
        let pool = NIOThreadPool(numberOfThreads: max(1, config.blockingThreads))
        pool.start()
        do {
            try await serve(group: group, pool: pool)
        } catch {
            logger.error("broker stopped: \(error)")
            try? await pool.shutdownGracefully()
            try? await group.shutdownGracefully()
            throw error
        }
        try await pool.shutdownGracefully()
        try await group.shutdownGracefully()
    }

    private func serve(group: MultiThreadedEventLoopGroup, pool: NIOThreadPool) async throws {
        let dataDirectory = config.broker.dataDirectory
        let nodeId = config.broker.nodeId
        let clusterId = config.broker.clusterId
        try await pool.runIfActive { try DataDirectory.prepare(dataDirectory, nodeId: nodeId, clusterId: clusterId) }
        let brokerBox = Mutex<Broker?>(nil)
        let logger = self.logger
        let frameBytesMax = config.broker.requestBytesMax
        // Accepting starts only once the broker is ready (autoRead on the listener).
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.autoRead, value: false)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard let broker = brokerBox.withLock({ $0 }) else {
                        throw ChannelError.ioOnClosedChannel
                    }
                    let id = ObjectIdentifier(channel)
                    self.connections.withLock { $0[id] = channel }
                    channel.closeFuture.whenComplete { _ in _ = self.connections.withLock { $0.removeValue(forKey: id) }
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(KafkaFrameDecoder(frameBytesMax: frameBytesMax)))
                    try channel.pipeline.syncOperations.addHandler(
                        KafkaConnectionHandler(broker: broker, inFlight: self.inFlight, logger: logger))
                }
            }
            .bind(host: config.listenHost, port: config.listenPort).get()
        let port = server.localAddress?.port ?? config.listenPort
        var brokerConfig = config.broker
        if brokerConfig.advertisedPort == 0 { brokerConfig.advertisedPort = Int32(port) }

        // The cluster links: only when other voters are named.
        let me = NodeID(UInt64(max(0, nodeId)))
        let network: PeerNetwork?
        if config.hasPeers, let voters = config.voters {
            let networkConfig = PeerNetworkConfig(
                nodeID: me, clusterID: clusterId, voters: voters, listen: config.clusterListen)
            do throws(PeerConfigError) {
                try networkConfig.validate()
            } catch {
                try? await server.close()
                throw error
            }
            network = PeerNetwork(config: networkConfig, group: group, logger: logger)
        } else {
            network = nil
        }
        let own = config.voters?.addresses[me] ?? config.clusterListen
        brokerConfig.clusterHost = own.host
        brokerConfig.clusterPort = Int32(own.port)
        brokerConfig.voters = config.voters?.nodeIDs.map { Int32(truncatingIfNeeded: $0.value) } ?? [nodeId]
        let environment = BrokerEnvironment(
            clock: SystemClock(), blocking: ThreadPoolExecutor(pool: pool), fileIO: PosixFileIO(),
            peers: network ?? NoPeers(), seed: UInt64.random(in: 0...UInt64.max),
            removeDirectory: { try DataDirectory.removeDirectory($0) })
        let broker = Broker(config: brokerConfig, environment: environment, group: group, logger: logger)
        do {
            try await broker.start().get()
            try await network?.start(
                inbound: { frames, peer in broker.deliver(frames, from: peer) },
                linkLost: { peer in broker.peerUnreachable(peer) })
        } catch {
            try? await server.close()
            await network?.shutdown()
            try? await broker.shutdown().get()
            throw error
        }
        brokerBox.withLock { $0 = broker }
        try await server.setOption(.autoRead, value: true).get()
        let advertised = "\(brokerConfig.advertisedHost):\(brokerConfig.advertisedPort)"
        logger.info("listening on \(config.listenHost):\(port), advertised as \(advertised), data in \(dataDirectory)")
        if network == nil {
            // A cluster of one elects itself at once: announce when it serves.
            try? await broker.waitUntilCaughtUp(timeoutMs: 30_000).get()
        }
        // Tests and scripts read the bound port from this line.
        Self.announce("keel broker listening on \(config.listenHost):\(port)\n")
        if network != nil {
            broker.waitUntilCaughtUp(timeoutMs: Int64.max / 4).whenSuccess {
                Self.announce("keel broker ready: node \(nodeId) has caught up with the cluster metadata\n")
            }
        }

        let status = StatusFile(directory: dataDirectory, broker: broker, nodeId: nodeId).start(on: group.next())

        try? await gracefulShutdown()

        status.cancel()

        if network != nil {
            logger.info("shutting down: handing leaderships to other nodes")
            let kept = (try? await broker.transferLeadershipsAway(timeoutMs: config.leadershipTransferTimeoutMs).get())
            if let kept, !kept.isEmpty { logger.warning("still leading \(kept.count) groups: \(kept.prefix(5))") }
        }
        logger.info("shutting down: closing the listener and \(connections.withLock { $0.count }) connections")
        try? await server.close()
        let open = connections.withLock { Array($0.values) }
        for channel in open { try? await channel.close() }
        try await broker.shutdown().get()
        await network?.shutdown()
        logger.info("all logs flushed and closed")
        // The requests of the connections closed above are still being answered: the closed
        // partitions answered their waiting produces and woke their long-polling fetches, which
        // now read (and find the partition closed) and answer, hopping between event loops.
        // The loops and the pool stop only once the last of them is done.
        if inFlight.current > 0 { logger.info("waiting for \(inFlight.current) requests to be answered") }
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: .seconds(10))
        while inFlight.current > 0, clock.now < deadline {
            try? await clock.sleep(for: .milliseconds(2))
        }
        if inFlight.current > 0 {
            logger.error("\(inFlight.current) requests still unanswered 10 s after the logs closed")
        }
    }
}
