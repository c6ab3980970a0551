import Glibc
import NIOCore

/// An open file: its descriptor and the path it was opened with (for errors and for
/// servers that send file regions).
public struct IOHandle: Hashable, Sendable, CustomStringConvertible {
    /// The operating system's file descriptor.
    public var descriptor: Int32
    /// The path the file was opened with.
    public var path: String

    /// Wraps a descriptor opened from `path`.
    public init(descriptor: Int32, path: String) {
        self.descriptor = descriptor
        self.path = path
    }

    /// The path.
    public var description: String { path }
}

/// How `FileIO.open` treats a missing or existing file.
public enum FileOpenMode: Sendable {
    /// Open an existing file for reading and writing; fail if it is missing.
    case existing
    /// Open for reading and writing, creating the file empty if it is missing.
    case createIfMissing
    /// Create the file, or empty it if it exists.
    case createTruncating
}

/// What a `FileIO` call was doing when it failed.
public enum FileOperation: String, Sendable {
    /// `FileIO.open`.
    case open
    /// `FileIO.read`.
    case read
    /// `FileIO.write`.
    case write
    /// `FileIO.sync` (fsync of a file).
    case sync
    /// `FileIO.truncate`.
    case truncate
    /// `FileIO.size(of:)`.
    case size
    /// `FileIO.listDirectory`.
    case list
    /// `FileIO.makeDirectory`.
    case makeDirectory
    /// `FileIO.remove`.
    case remove
    /// `FileIO.rename`.
    case rename
    /// `FileIO.syncDirectory` (fsync of a directory).
    case syncDirectory
}

/// A failed disk operation: what, on which path, and the `errno`.
public struct FileIOError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The operation that failed.
    public var operation: FileOperation
    /// The file or directory it was applied to.
    public var path: String
    /// The `errno` the operating system reported (0 for a short read or write at EOF).
    public var errno: Int32

    /// Describes a failed operation.
    public init(operation: FileOperation, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    /// The disk (or the quota) is full.
    public var isNoSpace: Bool { errno == ENOSPC || errno == EDQUOT }
    /// The file or directory does not exist.
    public var isNotFound: Bool { errno == ENOENT }

    /// For example `write /data/p-0/00000000000000000000.log: errno 28 (No space left on device)`.
    public var description: String {
        let message = strerror(errno).map { String(cString: $0) } ?? "unknown"
        return "\(operation.rawValue) \(path): errno \(errno) (\(message))"
    }
}

/// Everything `PartitionLog` does to the disk, and nothing more: the seam through which
/// tests inject faults (ENOSPC, EIO on fsync, torn writes) and count fsyncs.
///
/// Implementations are used from the one thread that owns the log.
public protocol FileIO: AnyObject {
    /// Opens `path` for reading and writing.
    func open(_ path: String, mode: FileOpenMode) throws(FileIOError) -> IOHandle
    /// Reads up to `count` bytes at `position`, appending them at `buffer`'s writer
    /// index; returns how many were read (fewer only at the end of the file).
    func read(_ file: IOHandle, at position: FilePosition, count: Int, into buffer: inout ByteBuffer)
        throws(FileIOError) -> Int
    /// Writes all readable bytes of `buffer` at `position` (one pwrite unless the kernel
    /// writes short).
    func write(_ file: IOHandle, at position: FilePosition, from buffer: ByteBuffer) throws(FileIOError)
    /// Makes the file's data durable (fsync / fdatasync).
    func sync(_ file: IOHandle) throws(FileIOError)
    /// Cuts or extends the file to `size`.
    func truncate(_ file: IOHandle, to size: ByteCount) throws(FileIOError)
    /// The file's current size.
    func size(of file: IOHandle) throws(FileIOError) -> ByteCount
    /// Closes the file. Errors are ignored: data that matters was synced before.
    func close(_ file: IOHandle)
    /// The names (not paths) of the entries in a directory, without `.` and `..`.
    func listDirectory(_ path: String) throws(FileIOError) -> [String]
    /// Creates a directory; succeeds if it already exists.
    func makeDirectory(_ path: String) throws(FileIOError)
    /// Removes a file.
    func remove(_ path: String) throws(FileIOError)
    /// Renames a file, replacing any file at `newPath` atomically.
    func rename(_ path: String, to newPath: String) throws(FileIOError)
    /// Makes a directory's entries (creations, renames, removals) durable.
    func syncDirectory(_ path: String) throws(FileIOError)
}

/// `FileIO` on POSIX system calls (pread, pwrite, fdatasync, ftruncate, …).
public final class PosixFileIO: FileIO, Sendable {
    /// Creates the real disk.
    public init() {}

    /// Opens with `O_RDWR | O_CLOEXEC`, plus `O_CREAT` / `O_TRUNC` as `mode` asks.
    public func open(_ path: String, mode: FileOpenMode) throws(FileIOError) -> IOHandle {
        var flags = O_RDWR | O_CLOEXEC
        switch mode {
        case .existing: break
        case .createIfMissing: flags |= O_CREAT
        case .createTruncating: flags |= O_CREAT | O_TRUNC
        }
        while true {
            let fd = Glibc.open(path, flags, 0o644)
            if fd >= 0 { return IOHandle(descriptor: fd, path: path) }
            if Glibc.errno == EINTR { continue }
            throw FileIOError(operation: .open, path: path, errno: Glibc.errno)
        }
    }

    /// Loops over `pread` until `count` bytes or the end of the file.
    public func read(_ file: IOHandle, at position: FilePosition, count: Int, into buffer: inout ByteBuffer)
        throws(FileIOError) -> Int
    {
        guard count > 0 else { return 0 }
        var failure: Int32 = 0
        let got = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw -> Int in
            var done = 0
            while done < count {
                let n = pread(file.descriptor, raw.baseAddress! + done, count - done, off_t(position.value + done))
                if n > 0 {
                    done += n
                } else if n == 0 {
                    break
                } else if Glibc.errno != EINTR {
                    failure = Glibc.errno
                    break
                }
            }
            return done
        }
        if failure != 0 { throw FileIOError(operation: .read, path: file.path, errno: failure) }
        return got
    }

    /// Loops over `pwrite` until every byte is written.
    public func write(_ file: IOHandle, at position: FilePosition, from buffer: ByteBuffer) throws(FileIOError) {
        var failure: Int32 = 0
        buffer.withUnsafeReadableBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(file.descriptor, raw.baseAddress! + done, raw.count - done, off_t(position.value + done))
                if n >= 0 {
                    done += n
                } else if Glibc.errno != EINTR {
                    failure = Glibc.errno
                    return
                }
            }
        }
        if failure != 0 { throw FileIOError(operation: .write, path: file.path, errno: failure) }
    }

    /// `fdatasync`: the data and the size, which is all a segment needs.
    public func sync(_ file: IOHandle) throws(FileIOError) {
        while fdatasync(file.descriptor) != 0 {
            if Glibc.errno != EINTR { throw FileIOError(operation: .sync, path: file.path, errno: Glibc.errno) }
        }
    }

    /// `ftruncate`.
    public func truncate(_ file: IOHandle, to size: ByteCount) throws(FileIOError) {
        while ftruncate(file.descriptor, off_t(size.value)) != 0 {
            if Glibc.errno != EINTR { throw FileIOError(operation: .truncate, path: file.path, errno: Glibc.errno) }
        }
    }

    /// `fstat`'s size.
    public func size(of file: IOHandle) throws(FileIOError) -> ByteCount {
        var info = stat()
        guard fstat(file.descriptor, &info) == 0 else {
            throw FileIOError(operation: .size, path: file.path, errno: Glibc.errno)
        }
        return ByteCount(Int(info.st_size))
    }

    /// `close`, ignoring errors.
    public func close(_ file: IOHandle) {
        _ = Glibc.close(file.descriptor)
    }

    /// `opendir` / `readdir`.
    public func listDirectory(_ path: String) throws(FileIOError) -> [String] {
        guard let dir = opendir(path) else { throw FileIOError(operation: .list, path: path, errno: Glibc.errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: &entry.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// `mkdir`, accepting an existing directory.
    public func makeDirectory(_ path: String) throws(FileIOError) {
        if mkdir(path, 0o755) != 0 && Glibc.errno != EEXIST {
            throw FileIOError(operation: .makeDirectory, path: path, errno: Glibc.errno)
        }
    }

    /// `unlink`.
    public func remove(_ path: String) throws(FileIOError) {
        if unlink(path) != 0 { throw FileIOError(operation: .remove, path: path, errno: Glibc.errno) }
    }

    /// `rename`.
    public func rename(_ path: String, to newPath: String) throws(FileIOError) {
        if Glibc.rename(path, newPath) != 0 {
            throw FileIOError(operation: .rename, path: path, errno: Glibc.errno)
        }
    }

    /// `open(O_DIRECTORY)` then `fsync`.
    public func syncDirectory(_ path: String) throws(FileIOError) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(operation: .syncDirectory, path: path, errno: Glibc.errno) }
        defer { _ = Glibc.close(fd) }
        while fsync(fd) != 0 {
            if Glibc.errno != EINTR {
                throw FileIOError(operation: .syncDirectory, path: path, errno: Glibc.errno)
            }
        }
    }
}
