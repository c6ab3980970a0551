// The simulated disk: an in-memory log of batches, read by the Raft core through `RaftLogReader`.
import Raft

/// A payload of the simulation: a client batch, named by a unique id.
public struct SimPayload: RaftPayload, Equatable {
    /// Unique across a run, so that the invariant checkers can tell batches apart.
    public var id: UInt64
    /// Records in the batch.
    public var recordCount: Int
    /// Bytes the batch would take on the wire.
    public var byteCount: Int { 61 + 20 * recordCount }

    /// Builds a payload.
    public init(id: UInt64, recordCount: Int) {
        self.id = id
        self.recordCount = recordCount
    }
}

/// A node's log in memory: what retention kept (from `firstIndex` on) and the term before it.
public struct SimLog: RaftLogReader, Sendable {
    /// The log start offset.
    public private(set) var firstIndex: LogIndex = .zero
    /// The term of the entry before `firstIndex` (zero for a fresh log).
    public private(set) var startPrevTerm: Term = .zero
    /// The entries, contiguous.
    public private(set) var entries: [Entry<SimPayload>] = []

    /// An empty fresh log.
    public init() {}

    /// The last index, or `firstIndex - 1` when empty.
    public var lastIndex: LogIndex { entries.last?.lastIndex ?? firstIndex - 1 }

    /// The term of the last entry (or of the entry before the start).
    public var lastTerm: Term { entries.last?.term ?? startPrevTerm }

    /// The position in `entries` of the entry covering `index`.
    public func position(covering index: LogIndex) -> Int? {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].lastIndex < index { low = mid + 1 } else { high = mid }
        }
        return low < entries.count && entries[low].firstIndex <= index ? low : nil
    }

    /// See `RaftLogReader`.
    public func term(at index: LogIndex) -> Term? {
        if index == firstIndex - 1 { return startPrevTerm }
        return position(covering: index).map { entries[$0].term }
    }

    /// See `RaftLogReader`.
    public func entries(from index: LogIndex, countMax: Int, bytesMax: Int) -> [Entry<SimPayload>] {
        guard let start = position(covering: index) else { return [] }
        var result: [Entry<SimPayload>] = []
        var bytes = 0
        for entry in entries[start...] {
            guard result.count < countMax, result.isEmpty || bytes + entry.byteCount <= bytesMax else { break }
            result.append(entry)
            bytes += entry.byteCount
        }
        return result
    }

    /// Applies a write from the core; returns a description of what is wrong with it, if anything.
    public mutating func apply(_ write: LogWrite<SimPayload>) -> String? {
        switch write.cut {
        case .none:
            break
        case .truncateAfter(let index):
            guard index >= firstIndex - 1 else { return "truncation at \(index) below the log start \(firstIndex)" }
            if index < lastIndex {
                guard let k = position(covering: index + 1), entries[k].firstIndex == index + 1 else {
                    return "truncation at \(index) is not a batch boundary"
                }
                entries.removeSubrange(k...)
            }
        case .reset(let start, let prevTerm):
            firstIndex = start
            startPrevTerm = prevTerm
            entries = []
        }
        for entry in write.entries {
            guard entry.firstIndex == lastIndex + 1 else {
                return "entry \(entry.firstIndex)...\(entry.lastIndex) does not follow the last index \(lastIndex)"
            }
            guard entry.term >= lastTerm else { return "entry term \(entry.term) below the previous \(lastTerm)" }
            entries.append(entry)
        }
        return nil
    }

    /// Retention: drops every entry up to `index`, which must end a batch.
    public mutating func removePrefix(through index: LogIndex) {
        guard index >= firstIndex, let k = position(covering: index) else { return }
        precondition(entries[k].lastIndex == index, "retention removes whole batches")
        startPrevTerm = entries[k].term
        firstIndex = index + 1
        entries.removeSubrange(...k)
    }
}
