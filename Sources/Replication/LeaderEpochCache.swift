import LogStorage
import NIOCore
import Raft
import Records

/// Where each term (leader epoch) starts in a partition's log, like Kafka's `leader-epoch-checkpoint`: the
/// core asks for the term at an index on every append and vote, and reading batch headers for that would cost
/// a disk read each time.
///
/// Invariants: entries are sorted by start offset with strictly increasing terms (terms never decrease along a
/// Raft log). The first entry may start below the log start: it gives the term of the entry just before it
/// (`term(at: logStart - 1)`), which retention and log resets must keep.
public struct LeaderEpochCache: Equatable, Sendable {
    /// One term and the first offset written in it.
    public struct Epoch: Equatable, Sendable {
        /// The term.
        public var term: Term
        /// Its first offset.
        public var startOffset: Offset
    }

    /// The epochs, oldest first.
    public private(set) var epochs: [Epoch] = []
    /// A log reset that was persisted here before the log itself was reset (see `ReplicaEngine`): whether it
    /// happened is decided on open by the log start.
    var pendingReset: (start: Offset, prevTerm: Term)?

    /// An empty cache (a fresh log).
    public init() {}

    /// Builds a cache from epochs in order.
    public init(epochs: [Epoch]) {
        for epoch in epochs { assign(epoch.term, startOffset: epoch.startOffset) }
    }

    /// The term of the entry covering `offset`: the last epoch starting at or before it; zero when none does
    /// (the position before a fresh log). The caller checks that `offset` is inside the log.
    public func term(at offset: Offset) -> Term {
        var low = 0
        var high = epochs.count
        while low < high {
            let mid = (low + high) / 2
            if epochs[mid].startOffset <= offset { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? .zero : epochs[low - 1].term
    }

    /// Notes that a batch of `term` was appended at `startOffset`; returns true when that started a new epoch.
    @discardableResult
    public mutating func assign(_ term: Term, startOffset: Offset) -> Bool {
        if let last = epochs.last {
            if last.term == term { return false }
            precondition(term > last.term, "term \(term) appended after term \(last.term)")
            precondition(startOffset > last.startOffset, "epoch \(term) starts at or before epoch \(last.term)")
        }
        epochs.append(Epoch(term: term, startOffset: startOffset))
        return true
    }

    /// Forgets every epoch starting at or after `offset` (the log was truncated there); returns whether any was.
    @discardableResult
    public mutating func truncate(from offset: Offset) -> Bool {
        let before = epochs.count
        epochs.removeAll { $0.startOffset >= offset }
        return epochs.count != before
    }

    /// Forgets epochs wholly below `logStart - 1` (retention removed them); keeps the one covering it.
    @discardableResult
    public mutating func trimStart(logStart: Offset) -> Bool {
        guard let keep = epochs.lastIndex(where: { $0.startOffset <= logStart.advanced(by: -1) }), keep > 0 else {
            return false
        }
        epochs.removeFirst(keep)
        return true
    }

    /// The cache of a log that restarts empty at `start`, the entry before it having term `prevTerm`.
    public static func reset(start: Offset, prevTerm: Term) -> LeaderEpochCache {
        var cache = LeaderEpochCache()
        if prevTerm > .zero { cache.epochs = [Epoch(term: prevTerm, startOffset: start.advanced(by: -1))] }
        return cache
    }

    /// Equal epochs and pending reset.
    public static func == (lhs: LeaderEpochCache, rhs: LeaderEpochCache) -> Bool {
        lhs.epochs == rhs.epochs && lhs.pendingReset?.start == rhs.pendingReset?.start
            && lhs.pendingReset?.prevTerm == rhs.pendingReset?.prevTerm
    }

    // MARK: File format

    /// The file name beside the segments.
    public static let fileName = "leader-epoch.checkpoint"
    static let magic: UInt32 = 0x4B4C_4543  // "KLEC"
    static let epochsMax = 1 << 20

    /// The file, big-endian:
    ///
    /// ```
    /// off  size  field
    ///   0     4  magic "KLEC"
    ///   4     2  version = 1
    ///   6     1  pending reset flag (0 or 1)
    ///   7     8  pending reset start offset (0 when none)
    ///  15     8  pending reset previous term (0 when none)
    ///  23     4  count N
    ///  27  16*N  N x (term u64, start offset i64)
    ///   …     4  CRC-32C of every byte before it
    /// ```
    func encoded() -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 31 + 16 * epochs.count)
        buffer.writeInteger(Self.magic)
        buffer.writeInteger(UInt16(1))
        buffer.writeInteger(UInt8(pendingReset == nil ? 0 : 1))
        buffer.writeInteger(pendingReset?.start.value ?? 0)
        buffer.writeInteger(pendingReset?.prevTerm.value ?? 0)
        buffer.writeInteger(UInt32(epochs.count))
        for epoch in epochs {
            buffer.writeInteger(epoch.term.value)
            buffer.writeInteger(epoch.startOffset.value)
        }
        buffer.writeInteger(CRC32C.checksum(buffer, at: 0, length: buffer.writerIndex))
        return buffer
    }

    /// Decodes the file, or nil when it is damaged in any way.
    static func decode(_ buffer: ByteBuffer) -> LeaderEpochCache? {
        let start = buffer.readerIndex
        let size = buffer.readableBytes
        guard size >= 31, let magic = buffer.getInteger(at: start, as: UInt32.self), magic == Self.magic,
            let version = buffer.getInteger(at: start + 4, as: UInt16.self), version == 1,
            let flag = buffer.getInteger(at: start + 6, as: UInt8.self), flag <= 1,
            let resetStart = buffer.getInteger(at: start + 7, as: Int64.self),
            let resetTerm = buffer.getInteger(at: start + 15, as: UInt64.self),
            let count = buffer.getInteger(at: start + 23, as: UInt32.self), Int(count) <= Self.epochsMax,
            size == 31 + 16 * Int(count),
            let crc = buffer.getInteger(at: start + size - 4, as: UInt32.self),
            CRC32C.checksum(buffer, at: start, length: size - 4) == crc
        else { return nil }
        var cache = LeaderEpochCache()
        if flag == 1 {
            guard resetStart >= 0 else { return nil }
            cache.pendingReset = (Offset(resetStart), Term(resetTerm))
        }
        for k in 0..<Int(count) {
            guard let term = buffer.getInteger(at: start + 27 + 16 * k, as: UInt64.self),
                let offset = buffer.getInteger(at: start + 35 + 16 * k, as: Int64.self),
                offset >= -1, term > 0
            else { return nil }
            if let last = cache.epochs.last, term <= last.term.value || offset <= last.startOffset.value {
                return nil
            }
            cache.epochs.append(Epoch(term: Term(term), startOffset: Offset(offset)))
        }
        return cache
    }
}

/// Why the leader-epoch cache was rebuilt on open.
public struct EpochCacheReport: Equatable, Sendable {
    /// Nil when the file was used as it was.
    public var rebuiltBecause: String?
    /// Whether a pending log reset was found and completed (or dropped).
    public var pendingReset: String?
}
