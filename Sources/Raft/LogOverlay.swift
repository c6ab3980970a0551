// The core's view of the log: the shell's log (through `RaftLogReader`) plus the writes not yet handed out.

/// The entries the core has handed out in `Ready` but the shell has not yet applied, layered over the reader.
struct LogOverlay<Payload: RaftPayload>: Sendable {
    var cut: LogCut = .none
    var entries: [Entry<Payload>] = []

    var isEmpty: Bool { cut == .none && entries.isEmpty }

    /// The last index of the reader's log that is still part of the log.
    func baseLast(_ log: some RaftLogReader<Payload>) -> LogIndex {
        switch cut {
        case .none: return log.lastIndex
        case .truncateAfter(let index): return min(index, log.lastIndex)
        case .reset(let start, _): return start - 1
        }
    }

    func firstIndex(_ log: some RaftLogReader<Payload>) -> LogIndex {
        if case .reset(let start, _) = cut { return start }
        return log.firstIndex
    }

    func lastIndex(_ log: some RaftLogReader<Payload>) -> LogIndex {
        entries.last?.lastIndex ?? baseLast(log)
    }

    func term(at index: LogIndex, _ log: some RaftLogReader<Payload>) -> Term? {
        if let first = entries.first, index >= first.firstIndex {
            guard let k = coveringEntry(index) else { return nil }
            return entries[k].term
        }
        switch cut {
        case .reset(let start, let prevTerm):
            return index == start - 1 ? prevTerm : nil
        case .none, .truncateAfter:
            return index <= baseLast(log) ? log.term(at: index) : nil
        }
    }

    /// The overlay entry that covers `index`, by binary search.
    func coveringEntry(_ index: LogIndex) -> Int? {
        var low = 0
        var high = entries.count
        while low < high {
            let mid = (low + high) / 2
            if entries[mid].lastIndex < index { low = mid + 1 } else { high = mid }
        }
        return low < entries.count && entries[low].firstIndex <= index ? low : nil
    }

    func entries(
        from index: LogIndex, countMax: Int, bytesMax: Int, _ log: some RaftLogReader<Payload>
    ) -> [Entry<Payload>] {
        var result: [Entry<Payload>] = []
        var bytes = 0
        var start = 0
        if entries.first.map({ index < $0.firstIndex }) ?? true {
            let last = baseLast(log)
            if case .reset = cut {
                // Nothing of the reader's log survives a reset.
            } else if index <= last {
                for entry in log.entries(from: index, countMax: countMax, bytesMax: bytesMax) {
                    guard entry.lastIndex <= last else { break }
                    result.append(entry)
                    bytes += entry.byteCount
                }
                guard result.last?.lastIndex == last else { return result }
            }
        } else {
            guard let k = coveringEntry(index) else { return [] }
            start = k
        }
        for entry in entries[start...] {
            guard result.count < countMax, result.isEmpty || bytes + entry.byteCount <= bytesMax else { break }
            result.append(entry)
            bytes += entry.byteCount
        }
        return result
    }

    /// Layers a new write over the pending one.
    mutating func write(
        truncateAfter index: LogIndex?, entries new: [Entry<Payload>], _ log: some RaftLogReader<Payload>
    ) {
        if let index {
            if let first = entries.first, index >= first.firstIndex - 1 {
                entries.removeAll { $0.lastIndex > index }
            } else {
                entries = []
                switch cut {
                case .none: cut = .truncateAfter(index)
                case .truncateAfter(let old): cut = .truncateAfter(min(old, index))
                case .reset(let start, _): precondition(index == start - 1, "a reset log is cut below its start")
                }
            }
        }
        if let first = new.first {
            precondition(first.firstIndex == lastIndex(log) + 1, "entries must follow the log without a gap")
        }
        entries.append(contentsOf: new)
    }

    mutating func reset(start: LogIndex, prevTerm: Term) {
        cut = .reset(start: start, prevTerm: prevTerm)
        entries = []
    }
}
