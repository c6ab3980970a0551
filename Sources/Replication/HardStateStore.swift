import LogStorage
import NIOCore
import Raft
import Records

/// Why the hard state could not be read or written.
public enum HardStateError: Error, Equatable, Sendable {
    /// The disk refused.
    case io(FileIOError)
    /// The file exists but is damaged: the node cannot know its term and vote, and must not guess (it could
    /// vote twice in a term). An operator has to look.
    case damaged(path: String, why: String)
}

/// The Raft hard state (term, vote) of one replica, in `raft.state` beside the partition's segments, written
/// atomically (temp file, fsync, rename, fsync of the directory) through `FileIO`.
///
/// The file, 24 bytes, big-endian:
///
/// ```
/// off size field
///   0   4  magic "KLHS"
///   4   2  version = 1
///   6   8  term
///  14   1  has vote (0 or 1)
///  15   8  voted for (node id; 0 when no vote)   -- bytes 15 ..< 23
///  23   4  CRC-32C of bytes 0 ..< 23             -- file size 27
/// ```
public struct HardStateStore {
    /// The file name beside the segments.
    public static let fileName = "raft.state"
    static let magic: UInt32 = 0x4B4C_4853
    static let size = 27

    let io: any FileIO
    /// The partition directory.
    public let directory: String

    /// A store for the partition in `directory`.
    public init(io: any FileIO, directory: String) {
        self.io = io
        self.directory = directory
    }

    var path: String { directory + "/" + Self.fileName }

    /// The persisted hard state, or `HardState.initial` when there is none yet.
    public func load() throws(HardStateError) -> HardState {
        let bytes: ByteBuffer?
        do throws(FileIOError) {
            bytes = try io.readWholeFile(path, countMax: Self.size + 1)
        } catch {
            throw .io(error)
        }
        guard let bytes else { return .initial }
        return try Self.decode(bytes, path: path)
    }

    /// Makes `state` durable; returns only once it is.
    public func save(_ state: HardState) throws(HardStateError) {
        do throws(FileIOError) {
            try io.writeAtomically(Self.encode(state), to: path, directory: directory)
        } catch {
            throw .io(error)
        }
    }

    static func encode(_ state: HardState) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        buffer.writeInteger(magic)
        buffer.writeInteger(UInt16(1))
        buffer.writeInteger(state.term.value)
        buffer.writeInteger(UInt8(state.votedFor == nil ? 0 : 1))
        buffer.writeInteger(state.votedFor?.value ?? 0)
        buffer.writeInteger(CRC32C.checksum(buffer, at: 0, length: 23))
        return buffer
    }

    static func decode(_ buffer: ByteBuffer, path: String) throws(HardStateError) -> HardState {
        let start = buffer.readerIndex
        guard buffer.readableBytes == size else {
            throw .damaged(path: path, why: "size \(buffer.readableBytes), expected \(size)")
        }
        guard let magic = buffer.getInteger(at: start, as: UInt32.self), magic == Self.magic,
            let version = buffer.getInteger(at: start + 4, as: UInt16.self), version == 1,
            let term = buffer.getInteger(at: start + 6, as: UInt64.self),
            let hasVote = buffer.getInteger(at: start + 14, as: UInt8.self), hasVote <= 1,
            let vote = buffer.getInteger(at: start + 15, as: UInt64.self),
            let crc = buffer.getInteger(at: start + 23, as: UInt32.self)
        else { throw .damaged(path: path, why: "bad magic, version or vote flag") }
        guard CRC32C.checksum(buffer, at: start, length: 23) == crc else {
            throw .damaged(path: path, why: "CRC mismatch")
        }
        return HardState(term: Term(term), votedFor: hasVote == 1 ? NodeID(vote) : nil)
    }
}

/// The commit index a replica knew when it closed cleanly (`raft.commit` beside the segments): with it, a restarted
/// replica knows its log is committed up to there, so a leader elected after a clean restart of the whole group
/// needs no LEADER_CHANGE batch to commit it. Only an optimisation: a missing or damaged file means "unknown".
///
/// ```
/// raft.commit := u32 magic "KLCC" | u16 version (1) | i64 commit index | u32 CRC-32C of the 14 bytes before it
/// ```
public enum CommitCheckpoint {
    /// The file name beside the segments.
    public static let fileName = "raft.commit"
    static let magic: UInt32 = 0x4B4C_4343
    static let size = 18

    /// The commit index written at the last clean close, or nil.
    public static func load(io: any FileIO, directory: String) -> LogIndex? {
        guard let bytes = try? io.readWholeFile(directory + "/" + fileName, countMax: size + 1),
            bytes.readableBytes == size
        else { return nil }
        let start = bytes.readerIndex
        guard bytes.getInteger(at: start, as: UInt32.self) == magic,
            bytes.getInteger(at: start + 4, as: UInt16.self) == 1,
            let commit = bytes.getInteger(at: start + 6, as: Int64.self), commit >= -1,
            let crc = bytes.getInteger(at: start + 14, as: UInt32.self),
            crc == CRC32C.checksum(bytes, at: start, length: 14)
        else { return nil }
        return LogIndex(commit)
    }

    /// Writes `commit` durably.
    public static func save(_ commit: LogIndex, io: any FileIO, directory: String) throws(FileIOError) {
        var buffer = ByteBufferAllocator().buffer(capacity: size)
        buffer.writeInteger(magic)
        buffer.writeInteger(UInt16(1))
        buffer.writeInteger(commit.value)
        buffer.writeInteger(CRC32C.checksum(buffer, at: 0, length: 14))
        try io.writeAtomically(buffer, to: directory + "/" + fileName, directory: directory)
    }
}
