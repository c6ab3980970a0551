// Replication: one Raft group per partition, driven over LogStorage (DESIGN.md, "Replication").
//
// What it owns: the shell around one `RaftNode` per partition replica. It serves the core's log reads from a
// `PartitionLog` (terms from a leader-epoch cache, entries as whole record batches), persists the hard state
// before anything is sent, applies log writes (leader appends, follower appends, conflict truncation, log
// resets), starts group-commit flushes that the server runs off its event loop, hands messages to a
// `RaftTransport`, and moves the high watermark (commit index + 1) that consumers read below. It also defines
// the peer wire format (one connection per node pair, every message tagged with its group, heartbeats of many
// groups coalesced into one frame per peer and tick).
//
// What it must never do: read the wall clock (time comes in as `now:`), sleep, open sockets, touch files other
// than through LogStorage's `FileIO`, draw unseeded randomness, or translate offsets (a Raft index is a Kafka
// offset).
//
// Main types: `ReplicaEngine` (one partition replica, confined to one event loop), `PartitionLogReader` (the
// core's view of a `PartitionLog`), `LeaderEpochCache`, `HardStateStore`, `BatchPayload` (an entry's record
// batches), `GroupID`, `ReplicationMessage` / `PeerFrame` / `ReplicationCodec` (the peer wire format),
// `HeartbeatCoalescer`, `RaftTransport`, `FlushRequest`, `CommitWaiters`.

import LogStorage
import NIOCore
import Raft
import Records

/// The Raft group of one partition: a topic name and a partition number.
public struct GroupID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The topic (at most `GroupID.topicBytesMax` bytes of UTF-8).
    public var topic: String
    /// The partition number, 0 ..< partition count.
    public var partition: Int32

    /// The longest topic name Kafka allows, in bytes.
    public static let topicBytesMax = 249

    /// Names a partition's group.
    public init(topic: String, partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    /// Orders by topic, then partition, so that iteration over groups is deterministic.
    public static func < (lhs: GroupID, rhs: GroupID) -> Bool {
        (lhs.topic, lhs.partition) < (rhs.topic, rhs.partition)
    }

    /// `topic-partition`, as partition directories are named.
    public var description: String { "\(topic)-\(partition)" }
}

extension Term {
    /// The term as a batch's `partitionLeaderEpoch`. Terms never reach 2^31 in practice; one that did would be
    /// a broken invariant.
    public var epoch: Int32 {
        precondition(value <= UInt64(Int32.max), "term \(value) does not fit a partitionLeaderEpoch")
        return Int32(value)
    }
}

extension LogIndex {
    /// The same position as a Kafka offset (no translation: they are the same number).
    public var offset: Offset { Offset(value) }
}

extension Offset {
    /// The same position as a Raft index.
    public var index: LogIndex { LogIndex(value) }
}

/// Why bytes are not a valid entry payload.
public enum BatchPayloadError: Error, Equatable, Sendable {
    /// No bytes at all.
    case empty
    /// A batch is malformed or fails its CRC.
    case invalidBatch(RecordBatchError)
    /// A batch does not start where the previous one (or the entry) says.
    case wrongOffset(expected: Int64, found: Int64)
    /// A batch's partitionLeaderEpoch differs from the entry's term.
    case wrongEpoch(expected: Int64, found: Int32)
    /// The batches end elsewhere than the entry's last index.
    case wrongLastOffset(expected: Int64, found: Int64)
}

/// The payload of a Raft entry in Keel: one or more whole record batches, as stored and as sent, with their
/// offsets and partitionLeaderEpoch already final.
public struct BatchPayload: RaftPayload, Sendable {
    /// The batches' bytes (readable bytes only).
    public let bytes: ByteBuffer
    /// Offsets covered: the sum of each batch's `lastOffsetDelta + 1`.
    public let recordCount: Int

    /// Bytes on the wire.
    public var byteCount: Int { bytes.readableBytes }

    init(trusted bytes: ByteBuffer, recordCount: Int) {
        self.bytes = bytes
        self.recordCount = recordCount
    }

    /// Checks bytes that came from outside (a peer) against the entry that carries them: every batch valid with
    /// its CRC, contiguous from `firstIndex` to `lastIndex`, each stamped with `term`.
    public init(
        validating bytes: ByteBuffer, firstIndex: LogIndex, lastIndex: LogIndex, term: Term
    ) throws(BatchPayloadError) {
        guard bytes.readableBytes > 0 else { throw .empty }
        var position = bytes.readerIndex
        var next = firstIndex.value
        while position < bytes.writerIndex {
            let header: RecordBatchHeader
            do throws(RecordBatchError) {
                header = try RecordBatch.validate(bytes, at: position)
            } catch {
                throw .invalidBatch(error)
            }
            guard header.baseOffset == next else { throw .wrongOffset(expected: next, found: header.baseOffset) }
            guard Int64(header.partitionLeaderEpoch) == Int64(clamping: term.value) else {
                throw .wrongEpoch(expected: Int64(clamping: term.value), found: header.partitionLeaderEpoch)
            }
            let (after, overflow) = header.baseOffset.addingReportingOverflow(Int64(header.lastOffsetDelta) + 1)
            guard !overflow else { throw .wrongLastOffset(expected: lastIndex.value, found: Int64.max) }
            next = after
            position += header.totalSize
        }
        guard next - 1 == lastIndex.value else { throw .wrongLastOffset(expected: lastIndex.value, found: next - 1) }
        self.bytes = bytes
        self.recordCount = Int(next - firstIndex.value)
    }
}
