import LogStorage
import NIOCore

/// The wall clock, as the broker sees it: a seam, so that tests and the simulation choose the time.
public protocol BrokerClock: Sendable {
    /// Milliseconds since the Unix epoch (batch timestamps, retention, segment age).
    func now() -> Milliseconds
}

/// Runs blocking file work (fsync, atomic metadata writes) off the event loops.
public protocol BlockingExecutor: Sendable {
    /// Runs `work` on a blocking thread and completes the returned future on `loop`.
    func run<Value: Sendable>(
        on loop: any EventLoop,
        _ work: @escaping @Sendable () throws -> Value
    ) -> EventLoopFuture<Value>
}

/// Where the broker's own metadata (topics, their configs, the producer id block) lives.
///
/// `save` is called on any thread and must be atomic (temp file, fsync, rename, fsync of
/// the directory) and must never let an older snapshot replace a newer one: snapshots
/// carry an increasing `BrokerMetadata.generation`.
public protocol MetadataStore: Sendable {
    /// Makes `metadata` durable; the future completes on `loop`.
    func save(_ metadata: BrokerMetadata, on loop: any EventLoop) -> EventLoopFuture<Void>
    /// Removes a deleted partition's directory and everything in it.
    func removePartitionDirectory(_ path: String, on loop: any EventLoop) -> EventLoopFuture<Void>
}

/// Everything the broker needs from the outside world.
public struct BrokerEnvironment: Sendable {
    /// The wall clock.
    public var clock: any BrokerClock
    /// Blocking work off the event loops.
    public var blocking: any BlockingExecutor
    /// The broker's metadata file.
    public var metadataStore: any MetadataStore
    /// The disk seam for partition logs. It is used from each partition's event loop and,
    /// for the fsyncs of `FlushPlan.execute`, from the blocking pool, so it must be thread-safe.
    public var fileIO: any FileIO & Sendable

    /// Bundles the seams.
    public init(
        clock: any BrokerClock,
        blocking: any BlockingExecutor,
        metadataStore: any MetadataStore,
        fileIO: any FileIO & Sendable
    ) {
        self.clock = clock
        self.blocking = blocking
        self.metadataStore = metadataStore
        self.fileIO = fileIO
    }
}
