import NIOCore
import Records

/// What `PartitionLog.open` found and did, for the operator's log and for tests.
public struct RecoveryReport: Equatable, Sendable, CustomStringConvertible {
    /// A segment (or its tail) cut away.
    public struct Truncation: Equatable, Sendable {
        /// The `.log` file.
        public var segment: String
        /// Where the cut was made.
        public var position: FilePosition
        /// Bytes removed.
        public var bytesRemoved: ByteCount
        /// Why: the first torn or corrupt batch, or a gap before this segment.
        public var reason: String
    }

    /// An index file pair rewritten from the log.
    public struct IndexRebuild: Equatable, Sendable {
        /// The `.log` file whose indexes were rebuilt.
        public var segment: String
        /// What was wrong with them.
        public var reason: String
    }

    /// Segment files found on open.
    public var segmentsFound = 0
    /// The recovery point read from `log.checkpoint` (the log's base when missing).
    public var recoveryPoint = Offset.zero
    /// Why `log.checkpoint` could not be used, if it could not.
    public var checkpointProblem: String?
    /// Where the scan of batches not known to be durable started; nil when there was
    /// nothing past the recovery point (a clean shutdown).
    public var scannedFrom: Offset?
    /// Batches and bytes past the recovery point that were checked (length and CRC).
    public var batchesScanned = 0
    /// Bytes of those batches.
    public var bytesScanned = ByteCount.zero
    /// Torn or corrupt tails cut away, and segments dropped after them.
    public var truncations: [Truncation] = []
    /// Index files rebuilt because they were missing or did not match the log.
    public var indexesRebuilt: [IndexRebuild] = []
    /// Leftover files removed: temp files, orphan indexes, segments below the log start.
    public var filesRemoved: [String] = []
    /// The log start offset after opening.
    public var logStartOffset = Offset.zero
    /// The log end offset after opening.
    public var logEndOffset = Offset.zero
    /// Things an operator should know that did not stop the open.
    public var warnings: [String] = []

    /// Total bytes truncated.
    public var bytesTruncated: ByteCount { ByteCount(truncations.reduce(0) { $0 + $1.bytesRemoved.value }) }

    /// Whether the log was closed cleanly: nothing to scan, cut or rebuild.
    public var wasClean: Bool { scannedFrom == nil && truncations.isEmpty && indexesRebuilt.isEmpty }

    /// A multi-line summary.
    public var description: String {
        var lines = [
            "segments \(segmentsFound), log [\(logStartOffset), \(logEndOffset)), recovery point \(recoveryPoint)"
        ]
        if let checkpointProblem { lines.append("checkpoint unusable: \(checkpointProblem)") }
        if let scannedFrom {
            lines.append("scanned \(batchesScanned) batches (\(bytesScanned) bytes) from offset \(scannedFrom)")
        } else {
            lines.append("clean: nothing past the recovery point")
        }
        for cut in truncations {
            lines.append("truncated \(cut.segment) at \(cut.position) (\(cut.bytesRemoved) bytes): \(cut.reason)")
        }
        for rebuild in indexesRebuilt { lines.append("rebuilt indexes of \(rebuild.segment): \(rebuild.reason)") }
        for file in filesRemoved { lines.append("removed \(file)") }
        for warning in warnings { lines.append("warning: \(warning)") }
        return lines.joined(separator: "\n")
    }
}

extension PartitionLog {
    /// Opens (or creates) the partition log in `directory` and recovers it.
    ///
    /// Segments entirely below the recovery point are trusted: their indexes are loaded
    /// and sanity-checked (each entry inside the file, the last one on a batch boundary
    /// with the right offset), and only the batches after the last index entry are
    /// walked. From the recovery point to the end, every batch's length, offsets and CRC
    /// are checked, and the log is cut at the first torn or corrupt batch (later segments
    /// are removed). Missing or mismatching indexes are rebuilt; temp files removed. A
    /// clean close leaves the recovery point at the end, so nothing is scanned.
    public static func open(directory: String, config: LogConfig, io: any FileIO, now: Milliseconds)
        throws(LogError) -> (log: PartitionLog, report: RecoveryReport)
    {
        try config.validate()
        var loader = LogLoader(directory: directory, config: config, io: io, now: now)
        do throws(LogError) {
            let log = try loader.load()
            return (log, loader.report)
        } catch {
            for segment in loader.segments { segment.close(io: io) }
            throw error
        }
    }
}

/// The steps of `PartitionLog.open`.
struct LogLoader {
    let directory: String
    let config: LogConfig
    let io: any FileIO
    let now: Milliseconds
    var report = RecoveryReport()
    var segments: [Segment] = []
    /// For CRC scans of whole tails.
    var window = FileWindow(windowBytes: 1024 * 1024)
    /// For a few headers at a time (clean opens stay cheap).
    var peekWindow = FileWindow(windowBytes: 8 * 1024)
    var directoryChanged = false

    init(directory: String, config: LogConfig, io: any FileIO, now: Milliseconds) {
        self.directory = directory
        self.config = config
        self.io = io
        self.now = now
    }

    func path(_ name: String) -> String { directory + "/" + name }

    mutating func remove(_ name: String) throws(LogError) {
        do throws(FileIOError) {
            try io.remove(path(name))
        } catch {
            if !error.isNotFound { throw .io(error) }
        }
        report.filesRemoved.append(name)
        directoryChanged = true
    }

    mutating func load() throws(LogError) -> PartitionLog {
        let names: [String]
        do throws(FileIOError) {
            try io.makeDirectory(directory)
            names = try io.listDirectory(directory).sorted()
        } catch {
            throw .io(error)
        }
        var logBases: [Offset] = []
        var indexFiles: [(Offset, String)] = []
        for name in names {
            if name.hasSuffix(".tmp") {
                try remove(name)
                continue
            }
            for suffix in [".log", ".index", ".timeindex"] where name.hasSuffix(suffix) {
                guard let base = Segment.parseStem(name.dropLast(suffix.count)) else {
                    throw .invalidSegmentName(name)
                }
                if suffix == ".log" { logBases.append(base) } else { indexFiles.append((base, name)) }
            }
        }
        logBases.sort()
        let known = Set(logBases)
        for (base, name) in indexFiles where !known.contains(base) { try remove(name) }

        let checkpoint = try readCheckpoint()
        let firstBase = logBases.first ?? checkpoint?.logStartOffset ?? .zero
        var logStart = max(checkpoint?.logStartOffset ?? firstBase, firstBase)
        let recoveryPoint = max(checkpoint?.recoveryPoint ?? firstBase, firstBase)
        report.recoveryPoint = recoveryPoint
        report.segmentsFound = logBases.count

        // Segments wholly below the log start: retention persisted the new start and
        // crashed before it removed them.
        while logBases.count > 1, logBases[1] <= logStart {
            let stem = Segment.fileStem(logBases[0])
            for suffix in [".log", ".index", ".timeindex"] where names.contains(stem + suffix) {
                try remove(stem + suffix)
            }
            logBases.removeFirst()
        }

        if logBases.isEmpty {
            let base = logStart
            do throws(FileIOError) {
                let file = try io.open(path(Segment.fileStem(base) + ".log"), mode: .createTruncating)
                let segment = Segment(directory: directory, baseOffset: base, file: file, size: 0, nowMs: now.value)
                segments.append(segment)
                segment.indexFile = try io.open(segment.indexPath, mode: .createTruncating)
                segment.timeIndexFile = try io.open(segment.timeIndexPath, mode: .createTruncating)
            } catch {
                throw .io(error)
            }
            directoryChanged = true
        }

        for (i, base) in logBases.enumerated() {
            let segment = try openSegment(base)
            segments.append(segment)
            let nextBase = i + 1 < logBases.count ? logBases[i + 1] : nil
            var cutHere = false
            if let nextBase, nextBase <= recoveryPoint {
                try loadTrusted(segment, nextBase: nextBase)
            } else {
                cutHere = try recover(segment, from: base <= recoveryPoint ? recoveryPoint : base)
            }
            if let nextBase, !cutHere, segment.nextOffset != nextBase {
                report.truncations.append(
                    .init(
                        segment: segment.logPath, position: FilePosition(segment.size), bytesRemoved: .zero,
                        reason: "segment ends at offset \(segment.nextOffset), next segment starts at \(nextBase)"))
                cutHere = true
            }
            if cutHere {
                for later in logBases[(i + 1)...] {
                    let stem = Segment.fileStem(later)
                    var removedBytes = 0
                    for suffix in [".log", ".index", ".timeindex"] where names.contains(stem + suffix) {
                        if suffix == ".log" { removedBytes = try fileSize(path(stem + suffix)) }
                        try remove(stem + suffix)
                    }
                    report.truncations.append(
                        .init(
                            segment: path(stem + ".log"), position: .zero, bytesRemoved: ByteCount(removedBytes),
                            reason: "follows a truncated segment"))
                }
                break
            }
        }

        if logStart > segments[segments.count - 1].nextOffset {
            // `PartitionLog.reset` persisted its new start and crashed before it replaced the
            // segments (or fsynced data is missing): the log restarts empty at its start.
            for segment in segments {
                segment.close(io: io)
                let stem = Segment.fileStem(segment.baseOffset)
                for suffix in [".log", ".index", ".timeindex"] { try remove(stem + suffix) }
            }
            segments = []
            do throws(FileIOError) {
                let file = try io.open(path(Segment.fileStem(logStart) + ".log"), mode: .createTruncating)
                let segment = Segment(
                    directory: directory, baseOffset: logStart, file: file, size: 0, nowMs: now.value)
                segments.append(segment)
                segment.indexFile = try io.open(segment.indexPath, mode: .createTruncating)
                segment.timeIndexFile = try io.open(segment.timeIndexPath, mode: .createTruncating)
            } catch {
                throw .io(error)
            }
            report.warnings.append("the log start \(logStart) is past the data: the log restarts empty there")
        }
        let active = segments[segments.count - 1]
        if let first = active.firstBatchMaxTimestamp ?? firstTimestamp(active) {
            active.rollClockMs = min(first, now.value)
        } else {
            active.rollClockMs = now.value
        }
        let logEnd = active.nextOffset
        if logStart > logEnd { logStart = logEnd }
        if logEnd < recoveryPoint {
            report.warnings.append(
                "the log ends at \(logEnd), below the recovery point \(recoveryPoint): data that was fsynced is missing"
            )
        }
        report.logStartOffset = logStart
        report.logEndOffset = logEnd

        // Persist what recovery did: rewritten indexes, fsynced scanned tails, the
        // directory, and a checkpoint whose recovery point is the end.
        do throws(FileIOError) {
            for segment in segments {
                if segment.hasPendingIndexEntries { try segment.writePendingIndexEntries(io: io) }
                if segment.dirty {
                    try io.sync(segment.file)
                    segment.markSynced()
                }
                if segment !== active { segment.closeIndexFiles(io: io) }
            }
            if directoryChanged { try io.syncDirectory(directory) }
        } catch {
            throw .io(error)
        }
        let log = PartitionLog(
            directory: directory, config: config, io: io, segments: segments, logStartOffset: logStart,
            recoveryPoint: logEnd, persistedRecoveryPoint: checkpoint?.recoveryPoint ?? Offset(-1),
            persistedLogStartOffset: checkpoint?.logStartOffset ?? Offset(-1))
        if checkpoint == nil || checkpoint?.recoveryPoint != logEnd || checkpoint?.logStartOffset != logStart {
            do throws(LogError) {
                try log.writeCheckpoint()
            } catch {
                log.closeAfterFailedOpen()
                throw error
            }
        }
        return log
    }

    func fileSize(_ path: String) throws(LogError) -> Int {
        do throws(FileIOError) {
            let file = try io.open(path, mode: .existing)
            defer { io.close(file) }
            return try io.size(of: file).value
        } catch {
            throw .io(error)
        }
    }

    mutating func readCheckpoint() throws(LogError) -> LogCheckpoint? {
        let file: IOHandle
        do throws(FileIOError) {
            file = try io.open(path(PartitionLog.checkpointName), mode: .existing)
        } catch {
            if error.isNotFound { return nil }
            throw .io(error)
        }
        defer { io.close(file) }
        var buffer = ByteBufferAllocator().buffer(capacity: LogCheckpoint.size + 1)
        do throws(FileIOError) {
            _ = try io.read(file, at: .zero, count: LogCheckpoint.size + 1, into: &buffer)
        } catch {
            throw .io(error)
        }
        switch LogCheckpoint.decode(buffer) {
        case .success(let checkpoint): return checkpoint
        case .failure(let problem):
            report.checkpointProblem = problem.why + "; scanning every segment"
            return nil
        }
    }

    func openSegment(_ base: Offset) throws(LogError) -> Segment {
        let logPath = path(Segment.fileStem(base) + ".log")
        do throws(FileIOError) {
            let file = try io.open(logPath, mode: .existing)
            let size: Int
            do throws(FileIOError) {
                size = try io.size(of: file).value
            } catch {
                io.close(file)
                throw error
            }
            return Segment(directory: directory, baseOffset: base, file: file, size: size, nowMs: now.value)
        } catch {
            throw .io(error)
        }
    }

    /// Reads the first batch's max timestamp of a segment.
    mutating func firstTimestamp(_ segment: Segment) -> Int64? {
        guard !segment.isEmpty else { return nil }
        var found: Int64?
        _ = try? walkBatches(
            io: io, file: segment.file, from: 0, end: segment.size, expected: nil, verifyCRC: false,
            window: &peekWindow
        ) { _, header in
            found = header.maxTimestamp
            return false
        }
        return found
    }

    /// Loads `.index` and `.timeindex` into the segment; returns what is wrong with them.
    func loadIndexes(_ segment: Segment) throws(LogError) -> String? {
        var entries: [OffsetIndexEntry] = []
        var timeEntries: [TimeIndexEntry] = []
        for (path, entrySize) in [(segment.indexPath, OffsetIndexEntry.size), (segment.timeIndexPath, 12)] {
            let file: IOHandle
            do throws(FileIOError) {
                file = try io.open(path, mode: .existing)
            } catch {
                if error.isNotFound { return "\(path) is missing" }
                throw .io(error)
            }
            defer { io.close(file) }
            var buffer = ByteBufferAllocator().buffer(capacity: 0)
            do throws(FileIOError) {
                let size = try io.size(of: file).value
                guard size % entrySize == 0 else { return "\(path) has \(size) bytes, not a multiple of \(entrySize)" }
                guard try io.read(file, at: .zero, count: size, into: &buffer) == size else {
                    return "\(path) shrank while being read"
                }
            } catch {
                throw .io(error)
            }
            while buffer.readableBytes >= entrySize {
                if entrySize == OffsetIndexEntry.size {
                    guard let relative = buffer.readInteger(as: UInt32.self),
                        let position = buffer.readInteger(as: UInt32.self)
                    else { break }
                    entries.append(OffsetIndexEntry(relativeOffset: RelativeOffset(relative), position: position))
                } else {
                    guard let timestamp = buffer.readInteger(as: Int64.self),
                        let relative = buffer.readInteger(as: UInt32.self)
                    else { break }
                    timeEntries.append(
                        TimeIndexEntry(maxTimestamp: timestamp, relativeOffset: RelativeOffset(relative)))
                }
            }
        }
        var previous: OffsetIndexEntry?
        for entry in entries {
            guard entry.position > 0, Int(entry.position) < segment.size else {
                return "offset index entry points at \(entry.position), outside the \(segment.size)-byte log"
            }
            if let previous, entry.position <= previous.position || entry.relativeOffset <= previous.relativeOffset {
                return "offset index entries are not increasing"
            }
            previous = entry
        }
        var previousTime: TimeIndexEntry?
        var match = 0  // both files are sorted: walk them together
        for entry in timeEntries {
            while match < entries.count, entries[match].relativeOffset < entry.relativeOffset { match += 1 }
            guard match < entries.count, entries[match].relativeOffset == entry.relativeOffset else {
                return "time index entry for relative offset \(entry.relativeOffset.value) has no offset index entry"
            }
            if let previousTime,
                entry.maxTimestamp <= previousTime.maxTimestamp || entry.relativeOffset <= previousTime.relativeOffset
            {
                return "time index entries are not increasing"
            }
            previousTime = entry
        }
        segment.index = entries
        segment.timeIndex = timeEntries
        segment.indexEntriesOnDisk = entries.count
        segment.timeEntriesOnDisk = timeEntries.count
        segment.lastIndexedPosition = Int(entries.last?.position ?? 0)
        segment.maxTimestamp = timeEntries.last?.maxTimestamp ?? noTimestamp
        return nil
    }

    /// Checks the first batch of a segment names it; throws when it is valid but misnamed.
    mutating func checkFirstBatch(_ segment: Segment, stop: WalkStop?, at position: Int) throws(LogError) {
        if position == 0, case .offsetGap(_, let found) = stop {
            throw .segmentBaseMismatch(segment: segment.logPath, firstBatchOffset: found)
        }
    }

    /// Throws when the segment's first batch does not start at the offset in its name.
    mutating func checkName(_ segment: Segment) throws(LogError) {
        var first: Offset?
        do throws(FileIOError) {
            _ = try walkBatches(
                io: io, file: segment.file, from: 0, end: segment.size, expected: nil, verifyCRC: false,
                window: &peekWindow
            ) { _, header in
                first = header.firstOffset
                return false
            }
        } catch {
            throw .io(error)
        }
        if let first, first != segment.baseOffset {
            throw .segmentBaseMismatch(segment: segment.logPath, firstBatchOffset: first)
        }
    }

    /// A segment entirely below the recovery point: trust its bytes, check its indexes,
    /// walk only past the last index entry.
    mutating func loadTrusted(_ segment: Segment, nextBase: Offset) throws(LogError) {
        var problem = try loadIndexes(segment)
        var start = 0
        var expected = segment.baseOffset
        if problem == nil, let last = segment.index.last {
            let offset = last.relativeOffset.absolute(base: segment.baseOffset)
            var found: Offset?
            do throws(FileIOError) {
                _ = try walkBatches(
                    io: io, file: segment.file, from: Int(last.position), end: segment.size, expected: nil,
                    verifyCRC: false, window: &peekWindow
                ) { _, header in
                    found = header.firstOffset
                    return false
                }
            } catch {
                throw .io(error)
            }
            if found == offset {
                start = Int(last.position)
                expected = offset
            } else {
                problem = "last index entry (offset \(offset)) does not point at a batch boundary with that offset"
            }
        }
        if let problem {
            segment.resetIndexes(nowMs: now.value)
            report.indexesRebuilt.append(.init(segment: segment.logPath, reason: problem))
            start = 0
            expected = segment.baseOffset
        } else if start > 0 {
            try checkName(segment)  // the walk below starts later
        }
        let interval = config.indexIntervalBytes
        let result: (position: Int, stop: WalkStop?)
        do throws(FileIOError) {
            result = try walkBatches(
                io: io, file: segment.file, from: start, end: segment.size, expected: expected, verifyCRC: false,
                window: &peekWindow
            ) { position, header in
                segment.noteBatch(at: position, header: header, indexIntervalBytes: interval)
                return true
            }
        } catch {
            throw .io(error)
        }
        try checkFirstBatch(segment, stop: result.stop, at: result.position)
        if let stop = result.stop {
            throw .corruptBatch(
                segment: segment.logPath, position: FilePosition(result.position), offset: segment.nextOffset,
                reason: "below the recovery point (data that was durable): \(stop.reason)")
        }
        if segment.nextOffset != nextBase {
            throw .segmentsNotContiguous(segment: segment.logPath, endOffset: segment.nextOffset, nextBase: nextBase)
        }
    }

    /// A segment holding the recovery point or after it: check every batch from the
    /// recovery point on (length, offsets, CRC) and cut at the first bad one. Returns
    /// whether it cut.
    mutating func recover(_ segment: Segment, from recoveryPoint: Offset) throws(LogError) -> Bool {
        let loaded = try loadIndexes(segment)
        let loadedIndex = segment.index
        let loadedTimeIndex = segment.timeIndex
        var start = 0
        var expected = segment.baseOffset
        if loaded == nil, recoveryPoint > segment.baseOffset {
            // Resume at the last index entry at or below the recovery point; the entries
            // after it are rebuilt by the scan.
            start = segment.floorPosition(for: recoveryPoint)
            if start > 0, let entry = segment.index.first(where: { Int($0.position) == start }) {
                expected = entry.relativeOffset.absolute(base: segment.baseOffset)
            } else {
                start = 0
            }
        }
        if start == 0 {
            segment.resetIndexes(nowMs: now.value)
        } else {
            try checkName(segment)
            segment.dropIndexEntries(fromPosition: start + 1, fromOffset: expected.advanced(by: 1))
            segment.maxTimestamp = segment.timeIndex.last?.maxTimestamp ?? noTimestamp
            // The batches before `start` end at the entry's offset. The walk moves the end on
            // only past a good batch, so when the batch at the entry is already torn (the
            // recovery point sits exactly on an index entry and the crash lost the first
            // unsynced batch), the end must be this, not the base offset the segment was
            // opened with: that would drop everything durable before it and make the next
            // append reuse offsets.
            segment.nextOffset = expected
        }
        let interval = config.indexIntervalBytes
        var batches = 0
        var bytes = 0
        var firstScanned: Offset?
        var result: (position: Int, stop: WalkStop?)
        var staleIndex: String?
        while true {
            do throws(FileIOError) {
                result = try walkBatches(
                    io: io, file: segment.file, from: start, end: segment.size, expected: expected, verifyCRC: true,
                    window: &window
                ) { position, header in
                    segment.noteBatch(at: position, header: header, indexIntervalBytes: interval)
                    if header.lastOffset >= recoveryPoint {
                        if firstScanned == nil { firstScanned = header.firstOffset }
                        batches += 1
                        bytes += header.totalSize
                    }
                    return true
                }
            } catch {
                throw .io(error)
            }
            // A scan resumed at an index entry that stops below the recovery point met bytes
            // that were durable: the index file (never fsynced) may be stale. Distrust it and
            // scan the whole segment before cutting anything.
            guard start > 0, let stop = result.stop, segment.nextOffset < recoveryPoint else { break }
            staleIndex =
                "the scan from the index entry at position \(start) stopped at offset \(segment.nextOffset), "
                + "below the recovery point (\(stop.reason)); rescanned the whole segment"
            start = 0
            expected = segment.baseOffset
            batches = 0
            bytes = 0
            firstScanned = nil
            segment.resetIndexes(nowMs: now.value)
        }
        try checkFirstBatch(segment, stop: result.stop, at: result.position)
        if batches > 0 || result.stop != nil {
            if report.scannedFrom == nil { report.scannedFrom = firstScanned ?? segment.nextOffset }
            report.batchesScanned += batches
            report.bytesScanned.value += bytes
            segment.markWritten()  // page-cache bytes after a crash: fsync them before calling them durable
        }
        if let stop = result.stop {
            let removed = segment.size - result.position
            do throws(FileIOError) {
                try io.truncate(segment.file, to: ByteCount(result.position))
            } catch {
                throw .io(error)
            }
            segment.size = result.position
            segment.markWritten()
            report.truncations.append(
                .init(
                    segment: segment.logPath, position: FilePosition(result.position),
                    bytesRemoved: ByteCount(removed), reason: stop.reason))
        }
        // The files keep the entries they share with the rebuilt indexes; the rest is
        // rewritten (nothing at all after a clean close).
        var same = 0
        while same < min(loadedIndex.count, segment.index.count), loadedIndex[same] == segment.index[same] {
            same += 1
        }
        var sameTime = 0
        while sameTime < min(loadedTimeIndex.count, segment.timeIndex.count),
            loadedTimeIndex[sameTime] == segment.timeIndex[sameTime]
        {
            sameTime += 1
        }
        segment.indexEntriesOnDisk = loaded == nil ? same : 0
        segment.timeEntriesOnDisk = loaded == nil ? sameTime : 0
        segment.indexFilesNeedCut = loaded != nil || same < loadedIndex.count || sameTime < loadedTimeIndex.count
        if segment.index != loadedIndex || segment.timeIndex != loadedTimeIndex || loaded != nil {
            let reason = loaded ?? staleIndex ?? "entries past the recovery point did not match the log"
            report.indexesRebuilt.append(.init(segment: segment.logPath, reason: reason))
        }
        return result.stop != nil
    }
}

extension PartitionLog {
    /// Closes the files of a log whose open failed at the last step.
    func closeAfterFailedOpen() {
        for segment in segments { segment.close(io: io) }
        isClosed = true
    }
}
