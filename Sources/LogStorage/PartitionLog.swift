import NIOCore
import Records

/// What an append did.
public struct AppendResult: Equatable, Sendable {
    /// The offset of the first record appended.
    public var firstOffset: Offset
    /// The offset of the last record appended.
    public var lastOffset: Offset
    /// The largest maxTimestamp among the appended batches.
    public var maxTimestamp: Int64
    /// How many batches the call appended.
    public var batchCount: Int
    /// How many bytes it wrote.
    public var bytes: ByteCount
}

/// A run of whole batches inside one segment file, ready to be sent as it is (sendfile /
/// NIO `FileRegion`). The handle stays valid until the segment is truncated, deleted by
/// retention, or the log is closed.
public struct LogSlice: Equatable, Sendable {
    /// The segment's `.log` file.
    public var file: IOHandle
    /// Where the first batch starts.
    public var position: FilePosition
    /// Bytes of whole batches from `position`.
    public var length: ByteCount
    /// The base offset of the first batch (may be below the offset asked for).
    public var firstOffset: Offset
    /// The last offset of the last batch.
    public var lastOffset: Offset
}

/// The answer to `PartitionLog.read`.
public struct LogReadResult: Equatable, Sendable {
    /// The file regions, in offset order; empty when nothing is readable.
    public var slices: [LogSlice]
    /// The offset after the last batch returned (the next fetch position).
    public var nextOffset: Offset

    /// The total bytes of every slice.
    public var byteCount: ByteCount { ByteCount(slices.reduce(0) { $0 + $1.length.value }) }
}

/// The answer to `PartitionLog.readVerified`: the bytes of whole batches, each CRC-checked.
public struct VerifiedRead: Sendable {
    /// The batches, concatenated as on disk.
    public var bytes: ByteBuffer
    /// How many batches `bytes` holds.
    public var batchCount: Int
    /// The base offset of the first batch (may be below the offset asked for).
    public var firstOffset: Offset
    /// The offset after the last batch.
    public var nextOffset: Offset
}

/// What `applyRetention` deleted.
public struct RetentionResult: Equatable, Sendable {
    /// How many whole segments were deleted.
    public var segmentsDeleted: Int
    /// Their total size.
    public var bytesDeleted: ByteCount
    /// The log start offset afterwards.
    public var logStartOffset: Offset
}

/// One segment as tools see it.
public struct SegmentInfo: Equatable, Sendable {
    /// The `.log` file's path.
    public var path: String
    /// The first offset the segment can hold (its name).
    public var baseOffset: Offset
    /// The offset after its last batch.
    public var nextOffset: Offset
    /// Bytes of whole batches.
    public var size: ByteCount
    /// The largest batch maxTimestamp, nil when empty.
    public var maxTimestamp: Int64?
    /// Entries of its offset index.
    public var indexEntries: Int
    /// Entries of its time index.
    public var timeIndexEntries: Int
}

/// The segmented log of one partition replica.
///
/// Confinement: a `PartitionLog` is not thread-safe and is not `Sendable`. It lives on
/// one thread (a partition's event loop) and every call runs to completion there.
///
/// Offsets: `logStartOffset <= durableEndOffset <= logEndOffset` (except that under
/// `FlushPolicy.none` durable means written). Everything below `durableEndOffset` was
/// fsynced (or, under `.none`, written to the page cache).
///
/// Faults: a failed write or fsync moves the log into a failed state (`failure`); it
/// refuses writes with `LogError.failed` until it is closed and reopened, and its
/// `durableEndOffset` never advances past what was fsynced.
public final class PartitionLog {
    /// The partition directory.
    public let directory: String
    /// The limits this log was opened with.
    public let config: LogConfig
    let io: any FileIO
    /// Segments in offset order; never empty; the last one is active.
    var segments: [Segment]
    /// The first offset a reader may ask for; persisted in `log.checkpoint`.
    public internal(set) var logStartOffset: Offset
    /// The offset the next appended record gets.
    public internal(set) var logEndOffset: Offset
    /// Everything below it is durable (fsynced under `.fsync`).
    public internal(set) var durableEndOffset: Offset
    /// Everything below it was fsynced and verified (by CRC on append or on recovery);
    /// recovery after a crash scans only from here.
    public internal(set) var recoveryPoint: Offset
    /// Why the log refuses writes, or nil.
    public internal(set) var failure: LogFailure?
    var persistedRecoveryPoint: Offset
    var persistedLogStartOffset: Offset
    /// Directory changes (segments created or removed) made, and those fsynced.
    var directoryChanges = 0
    var directorySyncedChanges = 0
    var directoryDirty: Bool { directoryChanges != directorySyncedChanges }
    /// Bytes appended since open; a flush plan remembers how many it covers.
    var appendedBytes = 0
    var flushedBytes = 0
    /// Flush plans handed out and not completed: truncation, retention and close wait.
    public internal(set) var flushesInFlight = 0
    var rolledSinceCheckpoint = false
    var isClosed = false
    var window = FileWindow(windowBytes: 64 * 1024)

    static let checkpointName = "log.checkpoint"

    init(
        directory: String, config: LogConfig, io: any FileIO, segments: [Segment], logStartOffset: Offset,
        recoveryPoint: Offset, persistedRecoveryPoint: Offset, persistedLogStartOffset: Offset
    ) {
        precondition(!segments.isEmpty, "a log always has an active segment")
        self.directory = directory
        self.config = config
        self.io = io
        self.segments = segments
        self.logStartOffset = logStartOffset
        self.logEndOffset = segments[segments.count - 1].nextOffset
        self.durableEndOffset = self.logEndOffset
        self.recoveryPoint = recoveryPoint
        self.persistedRecoveryPoint = persistedRecoveryPoint
        self.persistedLogStartOffset = persistedLogStartOffset
    }

    var active: Segment { segments[segments.count - 1] }

    /// Whether appends wait for a flush before they are durable: true under `.fsync`
    /// when something was appended (or a segment created) since the last flush.
    public var needsFlush: Bool {
        config.flushPolicy == .fsync && (durableEndOffset < logEndOffset || directoryDirty)
    }

    /// The segments, oldest first, for tools and tests.
    public var segmentInfos: [SegmentInfo] {
        segments.map {
            SegmentInfo(
                path: $0.logPath, baseOffset: $0.baseOffset, nextOffset: $0.nextOffset, size: ByteCount($0.size),
                maxTimestamp: $0.maxTimestamp == noTimestamp ? nil : $0.maxTimestamp, indexEntries: $0.index.count,
                timeIndexEntries: $0.timeIndex.count)
        }
    }

    // MARK: Append

    /// Appends client (leader) batches: validates each one (header, `batchBytesMax`,
    /// record count, CRC), assigns offsets from `logEndOffset` by rewriting only
    /// `baseOffset` and `partitionLeaderEpoch` in `batches`, and writes all of them with
    /// one pwrite. `batches` holds one or more whole batches in its readable bytes; its
    /// reader index does not move, so the same (rewritten) bytes can go to followers.
    /// Nothing is written unless every batch is valid. Not durable until `flush()`.
    public func append(_ batches: inout ByteBuffer, leaderEpoch: Int32, now: Milliseconds)
        throws(LogError) -> AppendResult
    {
        try checkWritable()
        let start = batches.readerIndex
        let end = batches.writerIndex
        guard end > start else { throw .emptyAppend }
        var position = start
        var count = 0
        var next = logEndOffset
        var maxTimestamp = noTimestamp
        while position < end {
            let header: RecordBatchHeader
            do throws(RecordBatchError) {
                header = try RecordBatch.validate(batches, at: position, maxBatchBytes: config.batchBytesMax)
                try RecordBatch.validateClientBatch(header)
            } catch {
                if case .tooLarge(let size, let limit) = error { throw .batchTooLarge(size: size, limit: limit) }
                throw .invalidBatch(index: count, reason: error)
            }
            let (after, overflow) = next.value.addingReportingOverflow(Int64(header.lastOffsetDelta) + 1)
            guard !overflow else { throw .offsetOverflow(next) }
            next = Offset(after)
            maxTimestamp = max(maxTimestamp, header.maxTimestamp)
            position += header.totalSize
            count += 1
        }
        // Offsets are assigned only once every batch passed.
        position = start
        var offset = logEndOffset
        while position < end {
            RecordBatch.setBaseOffset(offset, in: &batches, at: position)
            RecordBatch.setPartitionLeaderEpoch(leaderEpoch, in: &batches, at: position)
            let (length, delta) = Self.lengthAndDelta(batches, at: position)
            offset = offset.advanced(by: Int64(delta) + 1)
            position += RecordBatchHeader.logOverhead + Int(length)
        }
        return try write(batches, batchCount: count, nextOffset: next, maxTimestamp: maxTimestamp, now: now)
    }

    /// Appends batches a follower received from its leader: they already carry their
    /// offsets and epochs and must start exactly at `logEndOffset`, without gaps. Each is
    /// checked (header, CRC) and all are written with one pwrite. `batchBytesMax` is not
    /// applied: the leader accepted them.
    public func appendReplicated(_ batches: ByteBuffer, now: Milliseconds) throws(LogError) -> AppendResult {
        try checkWritable()
        let start = batches.readerIndex
        let end = batches.writerIndex
        guard end > start else { throw .emptyAppend }
        var position = start
        var count = 0
        var next = logEndOffset
        var maxTimestamp = noTimestamp
        while position < end {
            let header: RecordBatchHeader
            do throws(RecordBatchError) {
                header = try RecordBatch.validate(batches, at: position)
            } catch {
                throw .invalidBatch(index: count, reason: error)
            }
            guard header.firstOffset == next else {
                throw .nonContiguousAppend(expected: next, found: header.firstOffset)
            }
            guard header.baseOffset <= Int64.max - Int64(header.lastOffsetDelta) - 1 else {
                throw .offsetOverflow(header.firstOffset)
            }
            next = header.nextOffset
            maxTimestamp = max(maxTimestamp, header.maxTimestamp)
            position += header.totalSize
            count += 1
        }
        return try write(batches, batchCount: count, nextOffset: next, maxTimestamp: maxTimestamp, now: now)
    }

    /// `batchLength` and `lastOffsetDelta` of a batch that was validated already.
    static func lengthAndDelta(_ buffer: ByteBuffer, at position: Int) -> (Int32, Int32) {
        guard let length = buffer.getInteger(at: position + 8, as: Int32.self),
            let delta = buffer.getInteger(at: position + 23, as: Int32.self)
        else { preconditionFailure("batch at \(position) was validated but its header is not readable") }
        return (length, delta)
    }

    /// Writes validated batches that carry their final offsets, then indexes them.
    func write(_ batches: ByteBuffer, batchCount: Int, nextOffset: Offset, maxTimestamp: Int64, now: Milliseconds)
        throws(LogError) -> AppendResult
    {
        let firstOffset = logEndOffset
        let bytes = batches.readableBytes
        let segment = try segmentForAppend(bytes: bytes, lastOffset: nextOffset.advanced(by: -1), now: now)
        let base = segment.size
        do throws(FileIOError) {
            try io.write(segment.file, at: FilePosition(base), from: batches)
        } catch {
            throw fail(
                error.isNoSpace ? .diskFull(path: error.path) : .writeFailed(path: error.path, errno: error.errno))
        }
        var position = batches.readerIndex
        var offset = firstOffset
        while position < batches.writerIndex {
            let (length, delta) = Self.lengthAndDelta(batches, at: position)
            guard let batchMax = batches.getInteger(at: position + RecordBatchHeader.maxTimestampOffset, as: Int64.self)
            else { preconditionFailure("validated batch header is not readable") }
            let after = offset.advanced(by: Int64(delta) + 1)
            segment.noteBatch(
                at: base + position - batches.readerIndex, firstOffset: offset, nextOffset: after,
                maxTimestamp: batchMax, indexIntervalBytes: config.indexIntervalBytes)
            offset = after
            position += RecordBatchHeader.logOverhead + Int(length)
        }
        precondition(offset == nextOffset, "offsets assigned while indexing differ from validation")
        segment.size += bytes
        segment.markWritten()
        logEndOffset = nextOffset
        appendedBytes += bytes
        if config.flushPolicy == .none { durableEndOffset = logEndOffset }
        return AppendResult(
            firstOffset: firstOffset, lastOffset: nextOffset.advanced(by: -1), maxTimestamp: maxTimestamp,
            batchCount: batchCount, bytes: ByteCount(bytes))
    }

    /// The active segment, after rolling it if `bytes` more would break a limit.
    func segmentForAppend(bytes: Int, lastOffset: Offset, now: Milliseconds) throws(LogError) -> Segment {
        let current = active
        if !current.isEmpty {
            let tooBig = current.size + bytes > config.segmentBytesMax
            let tooOld = now.value - current.rollClockMs >= config.segmentMsMax
            let offsetsDoNotFit = RelativeOffset(lastOffset, base: current.baseOffset) == nil
            if tooBig || tooOld || offsetsDoNotFit { try rollActive(now: now) }
        }
        let segment = active
        guard RelativeOffset(lastOffset, base: segment.baseOffset) != nil else { throw .offsetOverflow(lastOffset) }
        guard segment.size + bytes <= Int(UInt32.max) else {
            throw .batchTooLarge(size: bytes, limit: Int(UInt32.max) - segment.size)
        }
        return segment
    }

    // MARK: Roll

    /// Closes the active segment to appends and starts a new one at `logEndOffset`
    /// (nothing happens when the active segment is empty). The new file and the
    /// directory entry become durable with the next flush.
    public func roll(now: Milliseconds) throws(LogError) {
        try checkWritable()
        if !active.isEmpty { try rollActive(now: now) }
    }

    func rollActive(now: Milliseconds) throws(LogError) {
        let old = active
        do throws(FileIOError) {
            try old.writePendingIndexEntries(io: io)
        } catch {
            throw fail(
                error.isNoSpace ? .diskFull(path: error.path) : .writeFailed(path: error.path, errno: error.errno))
        }
        old.closeIndexFiles(io: io)
        segments.append(try createSegment(base: logEndOffset, now: now))
        rolledSinceCheckpoint = true
    }

    /// Creates the three files of an empty segment.
    func createSegment(base: Offset, now: Milliseconds) throws(LogError) -> Segment {
        let path = directory + "/" + Segment.fileStem(base) + ".log"
        do throws(FileIOError) {
            let file = try io.open(path, mode: .createTruncating)
            let segment = Segment(directory: directory, baseOffset: base, file: file, size: 0, nowMs: now.value)
            segment.indexFile = try io.open(segment.indexPath, mode: .createTruncating)
            segment.timeIndexFile = try io.open(segment.timeIndexPath, mode: .createTruncating)
            directoryChanges += 1
            return segment
        } catch {
            throw fail(.metadataFailed(error))
        }
    }

    // MARK: Flush

    /// Bytes appended since the last completed flush began.
    public var unflushedBytes: ByteCount { ByteCount(appendedBytes - flushedBytes) }

    /// Group commit: one fsync per segment written since the last flush (usually just
    /// the active one), plus the directory after a roll, covers every append so far.
    /// Then `durableEndOffset` (and the recovery point) advance to what was covered.
    /// On an fsync error the log fails and `durableEndOffset` stays where it was.
    /// Under `.none` it still fsyncs (for close and for a shell that wants a recovery
    /// point), but appends never wait for it. Returns `durableEndOffset`.
    ///
    /// This runs the fsyncs on the calling thread; a shell that must not block its event
    /// loop uses `beginFlush`, runs `FlushPlan.execute` on a blocking pool, then calls
    /// `completeFlush` back on the log's thread.
    @discardableResult
    public func flush() throws(LogError) -> Offset {
        guard let plan = try beginFlush() else { return durableEndOffset }
        var failure: FileIOError?
        do throws(FileIOError) {
            try plan.execute(io: io)
        } catch {
            failure = error
        }
        return try completeFlush(plan, error: failure)
    }

    /// Starts a flush: writes pending index entries (no fsync: they are derived data)
    /// and returns what must be fsynced for everything appended so far to be durable, or
    /// nil when that is already the case. Appends may continue while the plan runs;
    /// truncation, retention and close are refused until it completes.
    public func beginFlush() throws(LogError) -> FlushPlan? {
        try checkWritable()
        let dirty = segments.filter(\.dirty)
        if dirty.isEmpty && !directoryDirty {
            durableEndOffset = logEndOffset
            recoveryPoint = logEndOffset
            flushedBytes = appendedBytes
            return nil
        }
        for segment in dirty where segment.hasPendingIndexEntries {
            do throws(FileIOError) {
                try segment.writePendingIndexEntries(io: io)
            } catch {
                throw fail(
                    error.isNoSpace ? .diskFull(path: error.path) : .writeFailed(path: error.path, errno: error.errno))
            }
        }
        flushesInFlight += 1
        return FlushPlan(
            files: dirty.map(\.file), directory: directoryDirty ? directory : nil, targetOffset: logEndOffset,
            generations: dirty.map { FlushPlan.Generation(base: $0.baseOffset, write: $0.writeGeneration) },
            directoryChanges: directoryChanges, appendedBytes: appendedBytes)
    }

    /// Finishes a flush begun with `beginFlush`, with the error `FlushPlan.execute`
    /// threw, if any. On success `durableEndOffset` advances to the plan's target; on
    /// error the log fails (`fsyncFailed`) and nothing is reported durable. Returns
    /// `durableEndOffset`.
    @discardableResult
    public func completeFlush(_ plan: FlushPlan, error: FileIOError?) throws(LogError) -> Offset {
        precondition(flushesInFlight > 0, "completeFlush without beginFlush")
        flushesInFlight -= 1
        if let error {
            switch error.operation {
            case .sync, .syncDirectory: throw fail(.fsyncFailed(path: error.path, errno: error.errno))
            default: throw fail(.metadataFailed(error))
            }
        }
        if let failure { throw .failed(failure) }
        for generation in plan.generations {
            for segment in segments where segment.baseOffset == generation.base {
                segment.syncedGeneration = max(segment.syncedGeneration, generation.write)
            }
        }
        if plan.directory != nil { directorySyncedChanges = max(directorySyncedChanges, plan.directoryChanges) }
        durableEndOffset = max(durableEndOffset, plan.targetOffset)
        recoveryPoint = max(recoveryPoint, plan.targetOffset)
        flushedBytes = max(flushedBytes, plan.appendedBytes)
        if config.flushPolicy == .none { durableEndOffset = logEndOffset }
        if rolledSinceCheckpoint, flushesInFlight == 0 {
            // Bound the scan after a crash to about one segment.
            try writeCheckpoint()
            rolledSinceCheckpoint = plan.directoryChanges != directoryChanges
        }
        return durableEndOffset
    }

    func checkNoFlushInFlight() throws(LogError) {
        guard flushesInFlight == 0 else { throw .flushInProgress }
    }

    // MARK: Close

    /// Flushes, writes the recovery point (so the next open scans nothing), and closes
    /// every file. A failed log only closes its files. Calling it twice does nothing.
    public func close() throws(LogError) {
        guard !isClosed else { return }
        try checkNoFlushInFlight()
        defer {
            for segment in segments { segment.close(io: io) }
            isClosed = true
        }
        guard failure == nil else { return }
        try flush()
        for segment in segments where segment.hasPendingIndexEntries {
            do throws(FileIOError) {
                try segment.writePendingIndexEntries(io: io)
            } catch {
                throw fail(.writeFailed(path: error.path, errno: error.errno))
            }
        }
        if persistedRecoveryPoint != recoveryPoint || persistedLogStartOffset != logStartOffset {
            try writeCheckpoint()
        }
    }

    // MARK: Failure

    func checkWritable() throws(LogError) {
        guard !isClosed else { throw .closed }
        if let failure { throw .failed(failure) }
    }

    /// Enters the failed state and returns the error to throw.
    func fail(_ reason: LogFailure) -> LogError {
        if failure == nil { failure = reason }
        return .failed(reason)
    }

    // MARK: Checkpoint

    /// Writes `log.checkpoint` atomically: temp file, fsync, rename, fsync of the directory.
    func writeCheckpoint() throws(LogError) {
        let path = directory + "/" + Self.checkpointName
        let temp = path + ".tmp"
        let bytes = LogCheckpoint(logStartOffset: logStartOffset, recoveryPoint: recoveryPoint).encoded()
        do throws(FileIOError) {
            let file = try io.open(temp, mode: .createTruncating)
            do throws(FileIOError) {
                try io.write(file, at: .zero, from: bytes)
                try io.sync(file)
            } catch {
                io.close(file)
                throw error
            }
            io.close(file)
            try io.rename(temp, to: path)
            try io.syncDirectory(directory)
        } catch {
            switch error.operation {
            case .sync, .syncDirectory: throw fail(.fsyncFailed(path: error.path, errno: error.errno))
            case .write where error.isNoSpace: throw fail(.diskFull(path: error.path))
            default: throw fail(.metadataFailed(error))
            }
        }
        persistedRecoveryPoint = recoveryPoint
        persistedLogStartOffset = logStartOffset
    }
}

/// The fsyncs a flush needs, to run on any thread (a blocking pool) while the log goes
/// on accepting appends; see `PartitionLog.beginFlush`.
public struct FlushPlan: Sendable {
    struct Generation: Sendable {
        var base: Offset
        var write: Int
    }

    /// The segment files to fsync.
    public let files: [IOHandle]
    /// The directory to fsync (segments were created or removed), or nil.
    public let directory: String?
    /// Everything below this offset is durable once the plan has run.
    public let targetOffset: Offset
    let generations: [Generation]
    let directoryChanges: Int
    let appendedBytes: Int

    /// Runs the fsyncs (files first, then the directory), stopping at the first error.
    public func execute(io: any FileIO) throws(FileIOError) {
        for file in files { try io.sync(file) }
        if let directory { try io.syncDirectory(directory) }
    }
}

/// The contents of `log.checkpoint`, 26 bytes, big-endian:
///
/// ```
/// off size field
///   0   4  magic "KLCP"
///   4   2  version = 1
///   6   8  logStartOffset
///  14   8  recoveryPoint   (everything below was fsynced and verified)
///  22   4  CRC-32C of bytes 0 ..< 22
/// ```
struct CheckpointProblem: Error {
    var why: String
}

struct LogCheckpoint: Equatable {
    static let magic: UInt32 = 0x4B4C_4350
    static let size = 26
    var logStartOffset: Offset
    var recoveryPoint: Offset

    func encoded() -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: Self.size)
        buffer.writeInteger(Self.magic)
        buffer.writeInteger(UInt16(1))
        buffer.writeInteger(logStartOffset.value)
        buffer.writeInteger(recoveryPoint.value)
        buffer.writeInteger(CRC32C.checksum(buffer, at: 0, length: 22))
        return buffer
    }

    /// Decodes a checkpoint, or says why it cannot.
    static func decode(_ buffer: ByteBuffer) -> Result<LogCheckpoint, CheckpointProblem> {
        guard buffer.readableBytes == size else {
            return .failure(CheckpointProblem(why: "size \(buffer.readableBytes), expected \(size)"))
        }
        let start = buffer.readerIndex
        guard let magic = buffer.getInteger(at: start, as: UInt32.self), magic == Self.magic,
            let version = buffer.getInteger(at: start + 4, as: UInt16.self), version == 1,
            let logStart = buffer.getInteger(at: start + 6, as: Int64.self),
            let recovery = buffer.getInteger(at: start + 14, as: Int64.self),
            let crc = buffer.getInteger(at: start + 22, as: UInt32.self)
        else { return .failure(CheckpointProblem(why: "bad magic or version")) }
        guard CRC32C.checksum(buffer, at: start, length: 22) == crc else {
            return .failure(CheckpointProblem(why: "CRC mismatch"))
        }
        guard logStart >= 0, recovery >= 0 else { return .failure(CheckpointProblem(why: "negative offsets")) }
        return .success(LogCheckpoint(logStartOffset: Offset(logStart), recoveryPoint: Offset(recovery)))
    }
}
