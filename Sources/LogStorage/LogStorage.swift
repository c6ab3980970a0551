// LogStorage: segmented, append-only partition logs on disk (DESIGN.md, "Storage").
//
// What this module owns: the files of one partition directory — segments
// (`<20-digit base offset>.log`, record batches concatenated exactly as on the wire),
// their sparse offset indexes (`.index`) and time indexes (`.timeindex`), and the
// `log.checkpoint` file (log start offset and recovery point). It appends, reads,
// truncates, rolls and applies retention, recovers after a crash, and groups many
// appends into one fsync.
//
// What it must never do: decode records (it reads batch headers and checks CRCs only),
// re-encode a batch's payload (only `baseOffset` and `partitionLeaderEpoch` are rewritten,
// in place), touch the disk other than through `FileIO`, read the wall clock (time comes
// in as `now:` arguments), or report as durable what was not fsynced.
//
// Main types: `PartitionLog` (one partition's log, confined to one thread), `LogConfig`
// (its limits), `FileIO` / `PosixFileIO` (the disk seam), `LogReadResult` / `LogSlice`
// (file regions a server can send as they are), `FlushPlan` (fsyncs to run off the log's
// thread), `RecoveryReport` (what opening did), `DurabilityWaiters` (who to tell when an
// offset becomes durable), `LogError`.

import NIOCore
import Records

/// A byte position inside a segment or index file.
public struct FilePosition: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The byte offset from the start of the file.
    public var value: Int

    /// Wraps a byte offset from the start of a file.
    @inlinable public init(_ value: Int) { self.value = value }

    /// The position `count` bytes later.
    @inlinable public func advanced(by count: ByteCount) -> FilePosition { FilePosition(value + count.value) }

    /// Orders by value.
    @inlinable public static func < (lhs: FilePosition, rhs: FilePosition) -> Bool { lhs.value < rhs.value }

    /// The decimal value.
    public var description: String { String(value) }

    /// The start of a file.
    public static let zero = FilePosition(0)
}

/// A number of bytes (a length or a size, never a position).
public struct ByteCount: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The number of bytes.
    public var value: Int

    /// Wraps a number of bytes.
    @inlinable public init(_ value: Int) { self.value = value }

    /// Orders by value.
    @inlinable public static func < (lhs: ByteCount, rhs: ByteCount) -> Bool { lhs.value < rhs.value }

    /// The decimal value.
    public var description: String { String(value) }

    /// No bytes.
    public static let zero = ByteCount(0)
}

/// An offset relative to its segment's base offset: the UInt32 stored in index files.
public struct RelativeOffset: Hashable, Comparable, Sendable {
    /// The raw value stored in an index entry.
    public var value: UInt32

    /// Wraps a raw index value.
    @inlinable public init(_ value: UInt32) { self.value = value }

    /// The relative offset of `offset` in a segment based at `base`, or nil when it does
    /// not fit in a UInt32 (the segment must roll first).
    @inlinable public init?(_ offset: Offset, base: Offset) {
        let delta = offset.value - base.value
        guard delta >= 0, delta <= Int64(UInt32.max) else { return nil }
        self.value = UInt32(delta)
    }

    /// The absolute offset in a segment based at `base`.
    @inlinable public func absolute(base: Offset) -> Offset { base.advanced(by: Int64(value)) }

    /// Orders by value.
    @inlinable public static func < (lhs: RelativeOffset, rhs: RelativeOffset) -> Bool { lhs.value < rhs.value }
}

/// A wall-clock time in milliseconds since the Unix epoch, as in batch timestamps.
///
/// The log never reads the clock: callers pass `now` in, so tests and the simulation
/// control time.
public struct Milliseconds: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var value: Int64

    /// Wraps milliseconds since the Unix epoch.
    @inlinable public init(_ value: Int64) { self.value = value }

    /// Orders by value.
    @inlinable public static func < (lhs: Milliseconds, rhs: Milliseconds) -> Bool { lhs.value < rhs.value }

    /// The decimal value.
    public var description: String { String(value) }
}
