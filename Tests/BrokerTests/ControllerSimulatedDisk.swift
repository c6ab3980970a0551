// A copy of Tests/ReplicationTests/SimulatedDisk.swift for the controller cluster tests (the `Simulation` target
// may not depend on LogStorage yet, so the harness cannot move there cleanly; merge the copies when it can).
//
// An in-memory disk behind LogStorage's `FileIO` seam that keeps, on a crash, only what was fsynced: file data
// synced with `sync`, directory entries (creations, renames, removals) synced with `syncDirectory`.
import Glibc
import LogStorage
import NIOCore

final class SimulatedDisk: FileIO {
    final class File {
        var data: [UInt8] = []
        var synced: [UInt8] = []
    }

    /// The namespace as running processes see it.
    var entries: [String: File] = [:]
    /// The namespace a crash brings back.
    var durableEntries: [String: File] = [:]
    var directories: Set<String> = []
    var handles: [Int32: File] = [:]
    var nextDescriptor: Int32 = 3
    var fileSyncs = 0
    /// When set, this many more changing operations succeed; then every one fails with EIO, as if the process
    /// died there (the test then calls `crash()`).
    var operationsLeft: Int?

    func change(_ operation: FileOperation, _ path: String) throws(FileIOError) {
        guard let left = operationsLeft else { return }
        guard left > 0 else { throw FileIOError(operation: operation, path: path, errno: EIO) }
        operationsLeft = left - 1
    }

    func open(_ path: String, mode: FileOpenMode) throws(FileIOError) -> IOHandle {
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

    func file(_ handle: IOHandle, _ operation: FileOperation) throws(FileIOError) -> File {
        guard let file = handles[handle.descriptor] else {
            throw FileIOError(operation: operation, path: handle.path, errno: EBADF)
        }
        return file
    }

    func read(_ handle: IOHandle, at position: FilePosition, count: Int, into buffer: inout ByteBuffer)
        throws(FileIOError) -> Int
    {
        let file = try file(handle, .read)
        let start = min(position.value, file.data.count)
        let end = min(position.value + count, file.data.count)
        buffer.writeBytes(file.data[start..<end])
        return end - start
    }

    func write(_ handle: IOHandle, at position: FilePosition, from buffer: ByteBuffer) throws(FileIOError) {
        try change(.write, handle.path)
        let file = try file(handle, .write)
        let bytes = buffer.readableBytesView
        let end = position.value + bytes.count
        if file.data.count < end { file.data.append(contentsOf: repeatElement(0, count: end - file.data.count)) }
        file.data.replaceSubrange(position.value..<end, with: bytes)
    }

    func sync(_ handle: IOHandle) throws(FileIOError) {
        try change(.sync, handle.path)
        let file = try file(handle, .sync)
        file.synced = file.data
        fileSyncs += 1
    }

    func truncate(_ handle: IOHandle, to size: ByteCount) throws(FileIOError) {
        try change(.truncate, handle.path)
        let file = try file(handle, .truncate)
        if size.value < file.data.count {
            file.data.removeSubrange(size.value...)
        } else {
            file.data.append(contentsOf: repeatElement(0, count: size.value - file.data.count))
        }
    }

    func size(of handle: IOHandle) throws(FileIOError) -> ByteCount {
        ByteCount(try file(handle, .size).data.count)
    }

    func close(_ handle: IOHandle) { handles[handle.descriptor] = nil }

    func children(of directory: String, in namespace: [String: File]) -> [String] {
        let prefix = directory + "/"
        return namespace.keys.filter { $0.hasPrefix(prefix) && !$0.dropFirst(prefix.count).contains("/") }
    }

    func listDirectory(_ path: String) throws(FileIOError) -> [String] {
        guard directories.contains(path) else { throw FileIOError(operation: .list, path: path, errno: ENOENT) }
        return children(of: path, in: entries).map { String($0.dropFirst(path.count + 1)) }.sorted()
    }

    func makeDirectory(_ path: String) throws(FileIOError) { directories.insert(path) }

    func remove(_ path: String) throws(FileIOError) {
        try change(.remove, path)
        guard entries.removeValue(forKey: path) != nil else {
            throw FileIOError(operation: .remove, path: path, errno: ENOENT)
        }
    }

    func rename(_ path: String, to newPath: String) throws(FileIOError) {
        try change(.rename, path)
        guard let file = entries.removeValue(forKey: path) else {
            throw FileIOError(operation: .rename, path: path, errno: ENOENT)
        }
        entries[newPath] = file
    }

    func syncDirectory(_ path: String) throws(FileIOError) {
        try change(.syncDirectory, path)
        for name in children(of: path, in: durableEntries) { durableEntries[name] = nil }
        for name in children(of: path, in: entries) { durableEntries[name] = entries[name] }
    }

    /// Power loss: every handle is gone, and only synced data and synced directory entries remain.
    func crash() {
        handles = [:]
        entries = durableEntries
        for file in entries.values { file.data = file.synced }
    }
}
