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

/// A failed step of writing or reading the metadata file.
public struct MetadataFileError: Error, CustomStringConvertible {
    /// What failed, on which path.
    public var description: String
}

/// `BrokerMetadata` as JSON in `<data-dir>/metadata.json`, replaced atomically: temp file,
/// fsync, rename, fsync of the directory. Writes are serialised and a snapshot older than
/// the last one written is skipped, so the file only moves forward.
public final class FileMetadataStore: MetadataStore {
    /// The metadata file's name inside the data directory.
    public static let fileName = "metadata.json"
    /// The suffix a partition directory gets while it is being deleted.
    public static let deletedSuffix = ".deleted"

    let directory: String
    let path: String
    let pool: NIOThreadPool
    let lastWritten = Mutex<UInt64?>(nil)

    /// A store in `directory` whose blocking work runs on `pool`.
    public init(directory: String, pool: NIOThreadPool) {
        self.directory = directory
        self.path = directory + "/" + Self.fileName
        self.pool = pool
    }

    /// Creates the data directory if needed, removes partition directories whose deletion
    /// was interrupted, and reads the metadata (empty on a fresh directory). Blocking.
    public func prepareAndLoad() throws -> BrokerMetadata {
        let files = FileManager.default
        try files.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for name in try files.contentsOfDirectory(atPath: directory) where name.hasSuffix(Self.deletedSuffix) {
            try files.removeItem(atPath: directory + "/" + name)
        }
        try? files.removeItem(atPath: path + ".tmp")
        guard files.fileExists(atPath: path) else { return BrokerMetadata() }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let metadata = try JSONDecoder().decode(BrokerMetadata.self, from: data)
        lastWritten.withLock { $0 = metadata.generation }
        return metadata
    }

    /// Writes `metadata` on the pool unless a newer snapshot was written already.
    public func save(_ metadata: BrokerMetadata, on loop: any EventLoop) -> EventLoopFuture<Void> {
        pool.runIfActive(eventLoop: loop) { try self.write(metadata) }
    }

    func write(_ metadata: BrokerMetadata) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes = try encoder.encode(metadata)
        try lastWritten.withLock { last in
            if let last, last > metadata.generation { return }
            let temp = path + ".tmp"
            try Self.writeDurably(bytes, to: temp)
            guard rename(temp, path) == 0 else {
                throw MetadataFileError(description: "rename \(temp): errno \(errno)")
            }
            try Self.syncDirectory(directory)
            last = metadata.generation
        }
    }

    static func writeDurably(_ bytes: Data, to path: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw MetadataFileError(description: "open \(path): errno \(errno)") }
        defer { close(fd) }
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + done, raw.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw MetadataFileError(description: "write \(path): errno \(errno)")
                }
                done += n
            }
        }
        guard fsync(fd) == 0 else { throw MetadataFileError(description: "fsync \(path): errno \(errno)") }
    }

    static func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw MetadataFileError(description: "open \(path): errno \(errno)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw MetadataFileError(description: "fsync \(path): errno \(errno)") }
    }

    /// Renames the directory out of the way (atomic), then removes it and everything in it.
    public func removePartitionDirectory(_ path: String, on loop: any EventLoop) -> EventLoopFuture<Void> {
        let directory = self.directory
        return pool.runIfActive(eventLoop: loop) {
            let files = FileManager.default
            guard files.fileExists(atPath: path) else { return }
            let doomed = path + Self.deletedSuffix
            try? files.removeItem(atPath: doomed)
            try files.moveItem(atPath: path, toPath: doomed)
            try Self.syncDirectory(directory)
            try files.removeItem(atPath: doomed)
        }
    }
}
