import Broker
import Foundation
import LogStorage
import NIOCore
import NIOPosix
import Synchronization

/// The real wall clock (CLOCK_REALTIME).
public struct SystemClock: BrokerClock {
    /// Creates the clock.
    public init() {}

    /// Milliseconds since the Unix epoch.
    public func now() -> Milliseconds {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return Milliseconds(Int64(spec.tv_sec) * 1000 + Int64(spec.tv_nsec) / 1_000_000)
    }
}

/// Blocking work on a NIO thread pool, away from the event loops.
public struct ThreadPoolExecutor: BlockingExecutor {
    let pool: NIOThreadPool

    /// Runs on `pool`, which must be started.
    public init(pool: NIOThreadPool) { self.pool = pool }

    /// Runs `work` on the pool; the future completes on `loop`.
    public func run<Value: Sendable>(
        on loop: any EventLoop,
        _ work: @escaping @Sendable () throws -> Value
    ) -> EventLoopFuture<Value> {
        pool.runIfActive(eventLoop: loop, work)
    }
}

/// A data directory that cannot be used.
public struct DataDirectoryError: Error, CustomStringConvertible {
    /// What is wrong, and what to do.
    public var description: String
}

/// The node's data directory: `node.id` records which node of which cluster it belongs to, so that a node
/// started on another node's data (or another cluster's) refuses to run instead of corrupting both; partition
/// directories whose deletion was interrupted are finished off at start.
public enum DataDirectory {
    /// The identity file's name.
    public static let identityFileName = "node.id"
    /// The suffix a partition directory gets while it is being deleted.
    public static let deletedSuffix = ".deleted"

    /// Creates the directory if needed, checks (or writes) its identity, and removes half-deleted partition
    /// directories. Blocking.
    public static func prepare(_ directory: String, nodeId: Int32, clusterId: String) throws {
        let files = FileManager.default
        try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in try files.contentsOfDirectory(atPath: directory) where name.hasSuffix(deletedSuffix) {
            try files.removeItem(atPath: directory + "/" + name)
        }
        let path = directory + "/" + identityFileName
        let identity = "cluster.id=\(clusterId)\nnode.id=\(nodeId)\n"
        if files.fileExists(atPath: path) {
            let found = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
            guard found == identity else {
                let shown = found.split(separator: "\n").joined(separator: ", ")
                throw DataDirectoryError(
                    description: """
                        \(directory) belongs to \(shown), not to cluster.id=\(clusterId), node.id=\(nodeId): \
                        give this node its own --data-dir
                        """)
            }
            return
        }
        try? files.removeItem(atPath: path + ".tmp")
        try writeDurably(Data(identity.utf8), to: path + ".tmp")
        guard rename(path + ".tmp", path) == 0 else {
            throw DataDirectoryError(description: "rename \(path).tmp: errno \(errno)")
        }
        try syncDirectory(directory)
    }

    /// Renames `path` out of the way (atomic, made durable), then removes it and everything in it. Blocking.
    public static func removeDirectory(_ path: String) throws {
        let files = FileManager.default
        guard files.fileExists(atPath: path) else { return }
        let doomed = path + deletedSuffix
        try? files.removeItem(atPath: doomed)
        try files.moveItem(atPath: path, toPath: doomed)
        let parent = (path as NSString).deletingLastPathComponent
        try syncDirectory(parent.isEmpty ? "." : parent)
        try files.removeItem(atPath: doomed)
    }

    static func writeDurably(_ bytes: Data, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw DataDirectoryError(description: "open \(path): errno \(errno)") }
        defer { close(fd) }
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var done = 0
            while done < raw.count {
                let n = Foundation.write(fd, base + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw DataDirectoryError(description: "write \(path): errno \(errno)")
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw DataDirectoryError(description: "fsync \(path): errno \(errno)") }
    }

    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw DataDirectoryError(description: "open \(path): errno \(errno)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw DataDirectoryError(description: "fsync \(path): errno \(errno)") }
    }
}
