import NIOCore
import Records

extension PartitionLog {
    /// The index of the segment that holds `offset` (the last one based at or before it).
    func segmentIndex(containing offset: Offset) -> Int {
        var low = 0
        var high = segments.count
        while low < high {
            let mid = (low + high) / 2
            if segments[mid].baseOffset <= offset { low = mid + 1 } else { high = mid }
        }
        return max(0, low - 1)
    }

    func checkReadable(_ offset: Offset) throws(LogError) {
        guard !isClosed else { throw .closed }
        guard offset >= logStartOffset, offset <= logEndOffset else {
            throw .offsetOutOfRange(requested: offset, logStart: logStartOffset, logEnd: logEndOffset)
        }
    }

    func walk(
        _ segment: Segment, from position: Int, verifyCRC: Bool = false, _ body: (Int, RecordBatchHeader) -> Bool
    ) throws(LogError) {
        let result: (position: Int, stop: WalkStop?)
        do throws(FileIOError) {
            result = try walkBatches(
                io: io, file: segment.file, from: position, end: segment.size, expected: nil, verifyCRC: verifyCRC,
                window: &window, body)
        } catch {
            throw .io(error)
        }
        if let stop = result.stop {
            throw .corruptBatch(
                segment: segment.logPath, position: FilePosition(result.position), offset: nil,
                reason: stop.reason)
        }
    }

    /// File slices of whole batches from the batch holding `offset`, for a fetch.
    ///
    /// Found with the offset index (binary search) and a short walk over batch headers.
    /// Stops before `maxBytes` would be exceeded, except that the first batch is always
    /// returned whole (KIP-74), and before any batch reaching `upTo` (exclusive, the high
    /// watermark). May span segments (one slice per segment). `offset == logEndOffset`
    /// gives no slices; below `logStartOffset` or above `logEndOffset` throws
    /// `offsetOutOfRange`. The bytes are not CRC-checked: see `readVerified`.
    public func read(from offset: Offset, maxBytes: Int, upTo limit: Offset? = nil) throws(LogError) -> LogReadResult {
        try checkReadable(offset)
        window.invalidate()
        let end = min(limit ?? logEndOffset, logEndOffset)
        var result = LogReadResult(slices: [], nextOffset: offset)
        guard offset < end else { return result }
        var segmentIndex = segmentIndex(containing: offset)
        var total = 0
        var full = false
        while segmentIndex < segments.count, !full {
            let segment = segments[segmentIndex]
            let start = result.slices.isEmpty ? segment.floorPosition(for: offset) : 0
            var slice: LogSlice?
            try walk(segment, from: start) { position, header in
                if header.lastOffset < offset { return true }
                let size = header.totalSize
                if header.lastOffset >= end || (total > 0 && total + size > maxBytes) {
                    full = true
                    return false
                }
                total += size
                if slice == nil {
                    slice = LogSlice(
                        file: segment.file, position: FilePosition(position), length: ByteCount(size),
                        firstOffset: header.firstOffset, lastOffset: header.lastOffset)
                } else {
                    slice?.length.value += size
                    slice?.lastOffset = header.lastOffset
                }
                result.nextOffset = header.nextOffset
                if total >= maxBytes { full = true }
                return !full
            }
            if let slice { result.slices.append(slice) }
            if result.nextOffset >= end { break }
            segmentIndex += 1
        }
        return result
    }

    /// Like `read`, but copies the bytes into a buffer and checks every batch's CRC and
    /// offsets on the way out. A damaged batch throws `corruptBatch` naming its segment,
    /// position and offset, and is never returned.
    public func readVerified(from offset: Offset, maxBytes: Int, upTo limit: Offset? = nil)
        throws(LogError) -> VerifiedRead
    {
        let plan = try read(from: offset, maxBytes: maxBytes, upTo: limit)
        var bytes = ByteBufferAllocator().buffer(capacity: plan.byteCount.value)
        var count = 0
        var expected = plan.slices.first?.firstOffset ?? offset
        for slice in plan.slices {
            let sliceStart = bytes.writerIndex
            do throws(FileIOError) {
                let got = try io.read(slice.file, at: slice.position, count: slice.length.value, into: &bytes)
                guard got == slice.length.value else {
                    throw FileIOError(operation: .read, path: slice.file.path, errno: 0)
                }
            } catch {
                if error.errno == 0 {
                    throw .corruptBatch(
                        segment: slice.file.path, position: slice.position, offset: expected,
                        reason: "file is shorter than the log thinks")
                }
                throw .io(error)
            }
            var index = sliceStart
            while index < bytes.writerIndex {
                let position = FilePosition(slice.position.value + index - sliceStart)
                let header: RecordBatchHeader
                do throws(RecordBatchError) {
                    header = try RecordBatch.validate(bytes, at: index)
                } catch {
                    throw .corruptBatch(
                        segment: slice.file.path, position: position, offset: expected,
                        reason: "\(error)")
                }
                guard header.firstOffset == expected else {
                    throw .corruptBatch(
                        segment: slice.file.path, position: position, offset: expected,
                        reason: "batch starts at offset \(header.firstOffset), expected \(expected)")
                }
                expected = header.nextOffset
                index += header.totalSize
                count += 1
            }
        }
        return VerifiedRead(
            bytes: bytes, batchCount: count, firstOffset: plan.slices.first?.firstOffset ?? offset,
            nextOffset: plan.nextOffset)
    }

    /// The first offset whose batch has a maxTimestamp at or after `timestamp` (ms), or
    /// nil when every batch is older (ListOffsets by time). Uses the time index, then a
    /// short walk over batch headers.
    public func offset(forTimestamp timestamp: Int64) throws(LogError) -> Offset? {
        guard !isClosed else { throw .closed }
        window.invalidate()
        for segment in segments where segment.maxTimestamp >= timestamp && segment.maxTimestamp != noTimestamp {
            let start = segment.timeFloorOffset(below: timestamp).map { segment.floorPosition(for: $0) } ?? 0
            var found: Offset?
            try walk(segment, from: start) { _, header in
                if header.maxTimestamp >= timestamp {
                    found = header.firstOffset
                    return false
                }
                return true
            }
            if let found { return max(found, logStartOffset) }
        }
        return nil
    }

    // MARK: Truncate

    /// Removes every batch at or above `offset` (Raft conflict truncation), across
    /// segments, and fixes the indexes. `offset` must be a batch's base offset (or
    /// `logEndOffset`, which changes nothing). The cut is fsynced before returning, and
    /// the recovery point is lowered (and persisted) so that a crash rescans new appends.
    public func truncate(from offset: Offset) throws(LogError) {
        try checkWritable()
        try checkNoFlushInFlight()
        try checkReadable(offset)
        guard offset < logEndOffset else { return }
        window.invalidate()
        let index = segmentIndex(containing: offset)
        let segment = segments[index]
        var cut: Int?
        var holder: RecordBatchHeader?
        try walk(segment, from: segment.floorPosition(for: offset)) { position, header in
            if header.lastOffset < offset { return true }
            cut = position
            holder = header
            return false
        }
        guard let cut, let holder else {
            throw .corruptBatch(
                segment: segment.logPath, position: FilePosition(segment.size), offset: offset,
                reason: "no batch holds an offset below the segment's end")
        }
        guard holder.firstOffset == offset else {
            throw .notBatchBoundary(requested: offset, batchFirst: holder.firstOffset, batchLast: holder.lastOffset)
        }
        // Lower the persisted recovery point first: if we crash half way, the next open
        // rescans from here instead of trusting bytes that are about to change.
        if recoveryPoint > offset { recoveryPoint = offset }
        if persistedRecoveryPoint > offset { try writeCheckpoint() }
        // Remove whole segments from the end first; a segment that starts exactly at
        // `offset` goes too, unless it is the only one.
        let firstRemoved = (cut == 0 && index > 0) ? index : index + 1
        for removed in segments[firstRemoved...].reversed() {
            removed.close(io: io)
            for path in [removed.logPath, removed.indexPath, removed.timeIndexPath] {
                do throws(FileIOError) {
                    try io.remove(path)
                } catch {
                    if !error.isNotFound { throw fail(.metadataFailed(error)) }
                }
            }
            directoryChanges += 1
        }
        segments.removeSubrange(firstRemoved...)
        let last = active
        if last === segment {
            do throws(FileIOError) {
                try io.truncate(segment.file, to: ByteCount(cut))
            } catch {
                throw fail(.metadataFailed(error))
            }
            segment.size = cut
            segment.dropIndexEntries(fromPosition: cut, fromOffset: offset)
            // The max timestamp and the end, again from the last index entry kept.
            segment.maxTimestamp = segment.timeIndex.last?.maxTimestamp ?? noTimestamp
            segment.nextOffset = segment.baseOffset
            let interval = config.indexIntervalBytes
            try walk(segment, from: Int(segment.index.last?.position ?? 0)) { position, header in
                segment.noteBatch(at: position, header: header, indexIntervalBytes: interval)
                return true
            }
        }
        do throws(FileIOError) {
            try last.writePendingIndexEntries(io: io)
            try io.sync(last.file)
            last.markSynced()
            if directoryDirty {
                try io.syncDirectory(directory)
                directorySyncedChanges = directoryChanges
            }
        } catch {
            switch error.operation {
            case .sync, .syncDirectory: throw fail(.fsyncFailed(path: error.path, errno: error.errno))
            default: throw fail(.metadataFailed(error))
            }
        }
        logEndOffset = offset
        durableEndOffset = min(durableEndOffset, offset)
    }

    // MARK: Reset

    /// Removes every segment and restarts the log empty at `offset`, which becomes both
    /// `logStartOffset` and `logEndOffset` (Raft's log reset, for a follower that lacks
    /// what its leader's retention already deleted). `offset` must be at or past
    /// `logEndOffset`.
    ///
    /// Crash safety: the new start is persisted in `log.checkpoint` first, and that write
    /// is the commit point. A crash before it leaves the old log; after it, opening finds
    /// a log start past the data and restarts the log empty there. Everything is durable
    /// when this returns.
    public func reset(startingAt offset: Offset, now: Milliseconds) throws(LogError) {
        try checkWritable()
        try checkNoFlushInFlight()
        guard offset >= logEndOffset else {
            throw .offsetOutOfRange(requested: offset, logStart: logEndOffset, logEnd: Offset(Int64.max))
        }
        window.invalidate()
        logStartOffset = offset
        recoveryPoint = offset
        try writeCheckpoint()
        for segment in segments.reversed() {
            segment.close(io: io)
            for path in [segment.logPath, segment.indexPath, segment.timeIndexPath] {
                do throws(FileIOError) {
                    try io.remove(path)
                } catch {
                    if !error.isNotFound { throw fail(.metadataFailed(error)) }
                }
            }
            directoryChanges += 1
        }
        segments = []
        logEndOffset = offset
        durableEndOffset = offset
        segments = [try createSegment(base: offset, now: now)]
        do throws(FileIOError) {
            try io.syncDirectory(directory)
        } catch {
            throw fail(.fsyncFailed(path: error.path, errno: error.errno))
        }
        directorySyncedChanges = directoryChanges
        rolledSinceCheckpoint = false
    }

    // MARK: Retention

    /// Deletes whole segments from the oldest while `retentionBytesMax` (the log stays at
    /// least that large) or `retentionMsMax` (by the segment's largest timestamp) allow.
    /// Never the active segment, never a segment holding an offset at or above `floor`
    /// (the high watermark, or what a follower still needs). The new `logStartOffset` is
    /// persisted before any file is removed.
    public func applyRetention(now: Milliseconds, floor: Offset) throws(LogError) -> RetentionResult {
        try checkWritable()
        try checkNoFlushInFlight()
        var totalBytes = segments.reduce(0) { $0 + $1.size }
        var count = 0
        var deletedBytes = 0
        while count < segments.count - 1 {
            let segment = segments[count]
            guard segment.nextOffset <= floor, segments[count + 1].baseOffset <= floor else { break }
            let bySize = config.retentionBytesMax.map { totalBytes - segment.size >= $0 } ?? false
            let byAge =
                config.retentionMsMax.map {
                    segment.maxTimestamp != noTimestamp && now.value - segment.maxTimestamp > $0
                } ?? false
            guard bySize || byAge else { break }
            totalBytes -= segment.size
            deletedBytes += segment.size
            count += 1
        }
        guard count > 0 else {
            return RetentionResult(segmentsDeleted: 0, bytesDeleted: .zero, logStartOffset: logStartOffset)
        }
        let newStart = segments[count].baseOffset
        if newStart > logStartOffset {
            logStartOffset = newStart
            if recoveryPoint < newStart { recoveryPoint = newStart }
            try writeCheckpoint()
        }
        for segment in segments[..<count] {
            segment.close(io: io)
            for path in [segment.logPath, segment.indexPath, segment.timeIndexPath] {
                do throws(FileIOError) {
                    try io.remove(path)
                } catch {
                    if !error.isNotFound { throw fail(.metadataFailed(error)) }
                }
            }
        }
        segments.removeFirst(count)
        do throws(FileIOError) {
            try io.syncDirectory(directory)
        } catch {
            throw fail(.fsyncFailed(path: error.path, errno: error.errno))
        }
        return RetentionResult(
            segmentsDeleted: count, bytesDeleted: ByteCount(deletedBytes),
            logStartOffset: logStartOffset)
    }
}
