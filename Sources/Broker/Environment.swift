import LogStorage
import NIOCore
import Raft
import Replication
import Synchronization

/// The wall clock, as the broker sees it: a seam, so that tests and the simulation choose the time.
public protocol BrokerClock: Sendable {
    /// Milliseconds since the Unix epoch (batch timestamps, retention, segment age, Raft's clock).
    func now() -> Milliseconds
}

/// Runs blocking file work (fsync, directory removal) off the event loops.
public protocol BlockingExecutor: Sendable {
    /// Runs `work` on a blocking thread and completes the returned future on `loop`.
    func run<Value: Sendable>(
        on loop: any EventLoop,
        _ work: @escaping @Sendable () throws -> Value
    ) -> EventLoopFuture<Value>
}

/// The links to the other nodes of the cluster (the server's TCP connections, or a test's in-memory network).
///
/// `send` is called from any event loop and must not call back into the broker synchronously; a frame may be
/// lost (Raft and the broker's requests between nodes tolerate loss). Frames the peers send reach the broker
/// through `Broker.deliver(_:from:)`.
public protocol PeerTransport: Sendable {
    /// Queues `frame` for `peer` (dropped when the link is down).
    func send(_ frame: PeerFrame, to peer: NodeID)
    /// True while the link to `peer` is up.
    func isConnected(to peer: NodeID) -> Bool
}

/// A node with no peers: the transport of a single-node cluster (every frame is dropped).
public struct NoPeers: PeerTransport {
    /// The transport of a cluster of one.
    public init() {}
    /// Drops the frame.
    public func send(_ frame: PeerFrame, to peer: NodeID) {}
    /// Never connected.
    public func isConnected(to peer: NodeID) -> Bool { false }
}

/// Everything the broker needs from the outside world.
public struct BrokerEnvironment: Sendable {
    /// The wall clock.
    public var clock: any BrokerClock
    /// Blocking work off the event loops.
    public var blocking: any BlockingExecutor
    /// The disk seam for partition logs. It is used from each partition's event loop and, for the fsyncs of
    /// `FlushPlan.execute`, from the blocking pool, so it must be thread-safe.
    public var fileIO: any FileIO & Sendable
    /// The links to the other nodes.
    public var peers: any PeerTransport
    /// Seeds the Raft election timeouts (mixed with the node id and each group) and the node's incarnation.
    public var seed: UInt64
    /// Removes a directory and everything in it (a deleted partition), durably; runs on the blocking pool.
    public var removeDirectory: @Sendable (String) throws -> Void

    /// Bundles the seams.
    public init(
        clock: any BrokerClock,
        blocking: any BlockingExecutor,
        fileIO: any FileIO & Sendable,
        peers: any PeerTransport = NoPeers(),
        seed: UInt64,
        removeDirectory: @escaping @Sendable (String) throws -> Void
    ) {
        self.clock = clock
        self.blocking = blocking
        self.fileIO = fileIO
        self.peers = peers
        self.seed = seed
        self.removeDirectory = removeDirectory
    }
}

/// Lets a log line through at most once per interval per key (a misconfigured peer retries forever), by the
/// broker's clock.
final class LogRateLimiter: Sendable {
    let intervalMs: Int64
    let clock: any BrokerClock
    let last = Mutex<[String: Int64]>([:])

    init(intervalMs: Int64, clock: any BrokerClock) {
        self.intervalMs = intervalMs
        self.clock = clock
    }

    func allow(_ key: String) -> Bool {
        let now = clock.now().value
        return last.withLock { last in
            if let at = last[key], now - at < intervalMs { return false }
            if last.count > 1024 { last = [:] }
            last[key] = now
            return true
        }
    }
}
