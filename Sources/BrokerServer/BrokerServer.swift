// BrokerServer: the edge of a node: the NIO listener for Kafka clients, POSIX files,
// the real clock, signals and graceful shutdown.
//
// What this module owns: `BrokerService` (a swift-service-lifecycle `Service` that starts
// the event loops, the blocking pool, the broker and the listener, and on SIGTERM/SIGINT
// stops accepting, closes connections, flushes and closes every log), the per-connection
// `KafkaConnectionHandler` (framing, in-order answers to pipelined requests, file regions
// for fetches), and the real implementations of the broker's seams (`SystemClock`,
// `ThreadPoolExecutor`, `FileMetadataStore`).
//
// What it must never do: hold protocol logic (that is `Broker`'s), or block an event loop
// on an fsync (flushes and metadata writes run on the blocking pool).
//
// Main types: `BrokerServerConfig`, `BrokerService`.

import Broker
import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import NIOPosix
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
    /// Event loop threads (`--threads`).
    public var eventLoopThreads: Int
    /// Threads of the blocking pool (fsync, metadata writes).
    public var blockingThreads: Int

    /// One node on 127.0.0.1:9092 with one event loop per core.
    public init(
        broker: BrokerConfig = BrokerConfig(),
        listenHost: String = "127.0.0.1",
        listenPort: Int = 9092,
        eventLoopThreads: Int = System.coreCount,
        blockingThreads: Int = 2
    ) {
        self.broker = broker
        self.listenHost = listenHost
        self.listenPort = listenPort
        self.eventLoopThreads = eventLoopThreads
        self.blockingThreads = blockingThreads
    }
}

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
        let store = FileMetadataStore(directory: config.broker.dataDirectory, pool: pool)
        let metadata = try await pool.runIfActive { try store.prepareAndLoad() }
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
        let environment = BrokerEnvironment(
            clock: SystemClock(), blocking: ThreadPoolExecutor(pool: pool), metadataStore: store,
            fileIO: PosixFileIO())
        let broker = Broker(config: brokerConfig, environment: environment, group: group, logger: logger)
        do {
            try await broker.start(from: metadata).get()
        } catch {
            try? await server.close()
            throw error
        }
        brokerBox.withLock { $0 = broker }
        try await server.setOption(.autoRead, value: true).get()
        let advertised = "\(brokerConfig.advertisedHost):\(brokerConfig.advertisedPort)"
        let data = brokerConfig.dataDirectory
        logger.info("listening on \(config.listenHost):\(port), advertised as \(advertised), data in \(data)")
        // Tests and scripts read the bound port from this line.
        Self.announce("keel broker listening on \(config.listenHost):\(port)\n")

        try? await gracefulShutdown()

        logger.info("shutting down: closing the listener and \(connections.withLock { $0.count }) connections")
        try? await server.close()
        let open = connections.withLock { Array($0.values) }
        for channel in open { try? await channel.close() }
        try await broker.shutdown().get()
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
