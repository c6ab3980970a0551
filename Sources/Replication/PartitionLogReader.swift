import LogStorage
import NIOCore
import Raft
import Records

/// The Raft core's view of a `PartitionLog`: terms from the `LeaderEpochCache`, entries as whole batches.
///
/// Every stored batch is one entry whose payload is its bytes, LEADER_CHANGE control batches included: a
/// follower then stores exactly the leader's bytes, so replicas stay byte-identical. (The core creates a
/// `.leaderChange` entry only in the leader's own log write; `ReplicaEngine` turns it into the control batch.)
///
/// Confined to the engine's thread, like the log. Reads that fail (I/O, a corrupt batch) return no entries and
/// are recorded in `failure`; the engine stops on the next check.
public final class PartitionLogReader: RaftLogReader {
    /// Entry payloads: record batches.
    public typealias Payload = BatchPayload

    /// The log read and written.
    public let log: PartitionLog
    /// The terms of the log.
    public private(set) var cache: LeaderEpochCache
    let io: any FileIO
    /// The first read error, if any.
    public private(set) var failure: LogError?

    init(log: PartitionLog, cache: LeaderEpochCache, io: any FileIO) {
        self.log = log
        self.cache = cache
        self.io = io
    }

    var cachePath: String { log.directory + "/" + LeaderEpochCache.fileName }

    // MARK: RaftLogReader

    /// The log start offset.
    public var firstIndex: LogIndex { log.logStartOffset.index }

    /// The last offset written (not necessarily durable).
    public var lastIndex: LogIndex { log.logEndOffset.index - 1 }

    /// From the epoch cache, for `firstIndex - 1 ... lastIndex`.
    public func term(at index: LogIndex) -> Term? {
        guard index >= firstIndex - 1, index <= lastIndex else { return nil }
        return cache.term(at: index.offset)
    }

    /// Whole batches from the one holding `index`, CRC-checked on the way out.
    public func entries(from index: LogIndex, countMax: Int, bytesMax: Int) -> [Entry<BatchPayload>] {
        guard index >= firstIndex, index <= lastIndex, failure == nil else { return [] }
        let read: VerifiedRead
        do throws(LogError) {
            read = try log.readVerified(from: index.offset, maxBytes: max(1, bytesMax))
        } catch {
            failure = error
            return []
        }
        var entries: [Entry<BatchPayload>] = []
        var position = read.bytes.readerIndex
        while position < read.bytes.writerIndex, entries.count < countMax {
            guard let header = try? RecordBatchHeader.read(from: read.bytes, at: position),
                header.partitionLeaderEpoch >= 0,
                let slice = read.bytes.getSlice(at: position, length: header.totalSize)
            else {
                failure = .corruptBatch(
                    segment: log.directory, position: FilePosition(position), offset: nil,
                    reason: "verified batch has no readable header or a negative epoch")
                return []
            }
            entries.append(
                Entry(
                    term: Term(UInt64(header.partitionLeaderEpoch)), firstIndex: header.firstOffset.index,
                    lastIndex: header.lastOffset.index,
                    content: .data(BatchPayload(trusted: slice, recordCount: Int(header.lastOffsetDelta) + 1))))
            position += header.totalSize
        }
        return entries
    }

    // MARK: Changes (from the engine)

    /// Notes the epoch of a batch just appended; a new epoch is persisted before this returns, so that the
    /// cache never lacks an epoch that is durable in the log.
    func noteAppended(term: Term, at offset: Offset) throws(LogError) {
        if cache.assign(term, startOffset: offset) { try persistCache() }
    }

    /// After the log was truncated from `offset`.
    func noteTruncated(from offset: Offset) throws(LogError) {
        if cache.truncate(from: offset) { try persistCache() }
    }

    /// After retention moved the log start.
    func noteLogStartMoved() throws(LogError) {
        if cache.trimStart(logStart: log.logStartOffset) { try persistCache() }
    }

    /// Resets the log to start empty at `start`, the entry before having `prevTerm`, crash-atomically:
    /// 1. cut the conflicting tail from the batch holding `start - 1` (every batch from there on conflicts with
    ///    the leader's log, so this is an ordinary Raft truncation),
    /// 2. persist the cache with the reset marked pending,
    /// 3. reset the log (its checkpoint write is the commit point),
    /// 4. persist the reset cache.
    /// A crash anywhere leaves the old log (minus a conflicting tail) or the reset one, and `open` settles the
    /// pending marker by the log start it finds.
    func reset(start: Offset, prevTerm: Term, now: Milliseconds) throws(LogError) {
        let holder = start.advanced(by: -1)
        if holder < log.logEndOffset {
            if holder < log.logStartOffset {
                try log.truncate(from: log.logStartOffset)
                try noteTruncated(from: log.logStartOffset)
            } else {
                let read = try log.read(from: holder, maxBytes: 1)
                guard let first = read.slices.first?.firstOffset else {
                    throw .corruptBatch(
                        segment: log.directory, position: .zero, offset: holder, reason: "no batch holds it")
                }
                try log.truncate(from: first)
                try noteTruncated(from: first)
            }
        }
        cache.pendingReset = (start, prevTerm)
        try persistCache()
        try log.reset(startingAt: start, now: now)
        cache = LeaderEpochCache.reset(start: start, prevTerm: prevTerm)
        try persistCache()
    }

    func persistCache() throws(LogError) {
        do throws(FileIOError) {
            try io.writeAtomically(cache.encoded(), to: cachePath, directory: log.directory)
        } catch {
            throw .io(error)
        }
    }

    // MARK: Open

    /// Loads the cache beside `log`, settles a pending reset, checks the cache against the batch headers, and
    /// rebuilds it from them when it is missing or does not match.
    static func open(log: PartitionLog, io: any FileIO) throws(LogError) -> (PartitionLogReader, EpochCacheReport) {
        var report = EpochCacheReport()
        let path = log.directory + "/" + LeaderEpochCache.fileName
        var loaded: LeaderEpochCache?
        do throws(FileIOError) {
            if let bytes = try io.readWholeFile(path, countMax: 31 + 16 * LeaderEpochCache.epochsMax) {
                loaded = LeaderEpochCache.decode(bytes)
                if loaded == nil { report.rebuiltBecause = "the file is damaged" }
            } else if log.logEndOffset > log.logStartOffset || log.logStartOffset > .zero {
                report.rebuiltBecause = "the file is missing"
            }
        } catch {
            throw .io(error)
        }
        var cache = loaded ?? LeaderEpochCache()
        var dirty = false
        if let pending = cache.pendingReset {
            if log.logStartOffset == pending.start && log.logEndOffset == pending.start {
                cache = LeaderEpochCache.reset(start: pending.start, prevTerm: pending.prevTerm)
                report.pendingReset = "the log reset to \(pending.start) completed"
            } else {
                cache.pendingReset = nil
                report.pendingReset = "the log reset to \(pending.start) did not happen"
            }
            dirty = true
        }
        let reader = PartitionLogReader(log: log, cache: cache, io: io)
        if reader.cache.truncate(from: log.logEndOffset) { dirty = true }
        if loaded != nil, let problem = try reader.verify() {
            report.rebuiltBecause = problem
        }
        if report.rebuiltBecause != nil {
            try reader.rebuild()
            dirty = true
        }
        if dirty { try reader.persistCache() }
        return (reader, report)
    }

    /// Checks each epoch against the batch where it starts and the batch before the next epoch; terms never
    /// decrease along the log, so that proves every batch in between. Returns what is wrong, or nil.
    func verify() throws(LogError) -> String? {
        let start = log.logStartOffset
        let end = log.logEndOffset
        guard end > start else { return nil }
        guard let first = cache.epochs.first, first.startOffset <= start else {
            return "no epoch covers the log start \(start)"
        }
        let epochs = cache.epochs
        for k in epochs.indices {
            let from = max(epochs[k].startOffset, start)
            let to = (k + 1 < epochs.count ? epochs[k + 1].startOffset : end).advanced(by: -1)
            guard from <= to else { continue }
            let atStart = try header(at: from)
            let atEnd = try header(at: to)
            let startsHere = epochs[k].startOffset < start || atStart.firstOffset == epochs[k].startOffset
            guard startsHere, atStart.partitionLeaderEpoch == epochs[k].term.epoch,
                atEnd.partitionLeaderEpoch == epochs[k].term.epoch
            else {
                return "epoch \(epochs[k].term) from \(epochs[k].startOffset) disagrees with the batches"
            }
        }
        return nil
    }

    func header(at offset: Offset) throws(LogError) -> RecordBatchHeader {
        let read = try log.readVerified(from: offset, maxBytes: 1)
        guard let header = try? RecordBatchHeader.read(from: read.bytes, at: read.bytes.readerIndex) else {
            throw .corruptBatch(segment: log.directory, position: .zero, offset: offset, reason: "no batch")
        }
        return header
    }

    /// Rebuilds the cache from every batch header. The term before the log start cannot be read from the log;
    /// it is kept from the old cache when that knew it, or else taken as the first batch's term.
    func rebuild() throws(LogError) {
        let start = log.logStartOffset
        let before = cache.epochs.last { $0.startOffset < start }?.term
        var rebuilt = LeaderEpochCache()
        var offset = start
        while offset < log.logEndOffset {
            let read = try log.readVerified(from: offset, maxBytes: 1 << 20)
            var position = read.bytes.readerIndex
            while position < read.bytes.writerIndex {
                guard let header = try? RecordBatchHeader.read(from: read.bytes, at: position),
                    header.partitionLeaderEpoch >= 0
                else {
                    throw .corruptBatch(
                        segment: log.directory, position: .zero, offset: offset, reason: "unreadable header")
                }
                let term = Term(UInt64(header.partitionLeaderEpoch))
                if rebuilt.epochs.isEmpty, start > .zero {
                    rebuilt.assign(min(before ?? term, term), startOffset: start.advanced(by: -1))
                }
                if let last = rebuilt.epochs.last, term < last.term {
                    throw .corruptBatch(
                        segment: log.directory, position: .zero, offset: header.firstOffset,
                        reason: "epoch \(term) after epoch \(last.term)")
                }
                rebuilt.assign(term, startOffset: header.firstOffset)
                position += header.totalSize
            }
            guard read.nextOffset > offset else { break }
            offset = read.nextOffset
        }
        if rebuilt.epochs.isEmpty, let before, before > .zero {
            rebuilt.assign(before, startOffset: start.advanced(by: -1))
        }
        cache = rebuilt
    }
}
