// An in-memory disk behind LogStorage's `FileIO` seam that keeps, on a crash, only what was fsynced: file data
// synced with `sync`, directory entries (creations, renames, removals) synced with `syncDirectory`.
import Glibc
import LogStorage
import NIOCore

/// Tests of Replication and of the controller run real `PartitionLog`s on it.
public final class SimulatedDisk: FileIO {
    /// An empty disk.
    public init() {}

    /// One file: what processes see, and what survives a crash.
    public final class File {
        public var data: [UInt8] = []
        public var synced: [UInt8] = []
    }

    /// The namespace as running processes see it.
    public var entries: [String: File] = [:]
    /// The namespace a crash brings back.
    public var durableEntries: [String: File] = [:]
    public var directories: Set<String> = []
    public var handles: [Int32: File] = [:]
    public var nextDescriptor: Int32 = 3
    public var fileSyncs = 0
    /// When set, this many more changing operations succeed; then every one fails with EIO, as if the process
    /// died there (the test then calls `crash()`).
    public var operationsLeft: Int?

    public func change(_ operation: FileOperation, _ path: String) throws(FileIOError) {
        guard let left = operationsLeft else { return }
        guard left > 0 else { throw FileIOError(operation: operation, path: path, errno: EIO) }
        operationsLeft = left - 1
    }

    public func open(_ path: String, mode: FileOpenMode) throws(FileIOError) -> IOHandle {
        if mode != .existing { try change(.open, path) }
        let file: File
        if let existing = entries[path] {
            file = existing
            if mode == .createTruncating { file.data = [] }
        } else {
            guard mode != .existing else { throw FileIOError(operation: .open, path: path, errno: ENOENT) }
            file = File()
            entries[path] = file
        }
        nextDescriptor += 1
        handles[nextDescriptor] = file
        return IOHandle(descriptor: nextDescriptor, path: path)
    }

    public func file(_ handle: IOHandle, _ operation: FileOperation) throws(FileIOError) -> File {
        guard let file = handles[handle.descriptor] else {
            throw FileIOError(operation: operation, path: handle.path, errno: EBADF)
        }
        return file
    }

    public func read(_ handle: IOHandle, at position: FilePosition, count: Int, into buffer: inout ByteBuffer)
        throws(FileIOError) -> Int
    {
        let file = try file(handle, .read)
        let start = min(position.value, file.data.count)
        let end = min(position.value + count, file.data.count)
        buffer.writeBytes(file.data[start..<end])
        return end - start
    }

    public func write(_ handle: IOHandle, at position: FilePosition, from buffer: ByteBuffer) throws(FileIOError) {
        try change(.write, handle.path)
        let file = try file(handle, .write)
        let bytes = buffer.readableBytesView
        let end = position.value + bytes.count
        if file.data.count < end { file.data.append(contentsOf: repeatElement(0, count: end - file.data.count)) }
        file.data.replaceSubrange(position.value..<end, with: bytes)
    }

    public func sync(_ handle: IOHandle) throws(FileIOError) {
        try change(.sync, handle.path)
        let file = try file(handle, .sync)
        file.synced = file.data
        fileSyncs += 1
    }

    public func truncate(_ handle: IOHandle, to size: ByteCount) throws(FileIOError) {
        try change(.truncate, handle.path)
        let file = try file(handle, .truncate)
        if size.value < file.data.count {
            file.data.removeSubrange(size.value...)
        } else {
            file.data.append(contentsOf: repeatElement(0, count: size.value - file.data.count))
        }
    }

    public func size(of handle: IOHandle) throws(FileIOError) -> ByteCount {
        ByteCount(try file(handle, .size).data.count)
    }

    public func close(_ handle: IOHandle) { handles[handle.descriptor] = nil }

    public func children(of directory: String, in namespace: [String: File]) -> [String] {
        let prefix = directory + "/"
        return namespace.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
    }

    public func listDirectory(_ path: String) throws(FileIOError) -> [String] {
        guard directories.contains(path) else { throw FileIOError(operation: .list, path: path, errno: ENOENT) }
        // Files and subdirectories, as readdir lists them (a broker looks for partition directories this way).
        let prefix = path + "/"
        let subdirectories = directories.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
        return Set(children(of: path, in: entries) + subdirectories).map { String($0.dropFirst(prefix.count)) }.sorted()
    }

    public func makeDirectory(_ path: String) throws(FileIOError) { directories.insert(path) }

    public func remove(_ path: String) throws(FileIOError) {
        try change(.remove, path)
        guard entries.removeValue(forKey: path) != nil else {
            throw FileIOError(operation: .remove, path: path, errno: ENOENT)
        }
    }

    public func rename(_ path: String, to newPath: String) throws(FileIOError) {
        try change(.rename, path)
        guard let file = entries.removeValue(forKey: path) else {
            throw FileIOError(operation: .rename, path: path, errno: ENOENT)
        }
        entries[newPath] = file
    }

    public func syncDirectory(_ path: String) throws(FileIOError) {
        try change(.syncDirectory, path)
        for name in children(of: path, in: durableEntries) { durableEntries[name] = nil }
        for name in children(of: path, in: entries) { durableEntries[name] = entries[name] }
    }

    /// Power loss: every handle is gone, and only synced data and synced directory entries remain.
    public func crash() {
        handles = [:]
        entries = durableEntries
        for file in entries.values { file.data = file.synced }
    }
}
