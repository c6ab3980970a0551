import NIOCore
import Records

/// One entry of a `.index` file: 8 bytes, big-endian.
///
/// ```
/// off size field
///   0   4  relative offset  (a batch's baseOffset - the segment's base offset)
///   4   4  file position    (where that batch starts in the .log file)
/// ```
/// One entry is added for the first batch that starts `indexIntervalBytes` or more
/// after the previous entry; position 0 is implied and never stored.
struct OffsetIndexEntry: Equatable {
    static let size = 8
    var relativeOffset: RelativeOffset
    var position: UInt32
}

/// One entry of a `.timeindex` file: 12 bytes, big-endian.
///
/// ```
/// off size field
///   0   8  max timestamp so far (ms, over every batch up to and including this one)
///   8   4  relative offset      (the batch that carries the offset index entry made with it)
/// ```
/// Added together with an offset index entry, when the max timestamp has grown since
/// the previous time index entry. So both arrays are sorted.
struct TimeIndexEntry: Equatable {
    static let size = 12
    var maxTimestamp: Int64
    var relativeOffset: RelativeOffset
}

/// Stands for "no batch yet" in timestamps (Kafka's NO_TIMESTAMP is -1, but real
/// timestamps may be negative).
let noTimestamp = Int64.min

/// One segment: a `.log` file of whole batches plus its in-memory indexes, which are
/// mirrored to `.index` / `.timeindex` files lazily (at flush, roll and close); the
/// files are derived data, checked and rebuilt on open.
final class Segment {
    let baseOffset: Offset
    let logPath: String
    let indexPath: String
    let timeIndexPath: String
    let file: IOHandle
    /// Bytes of whole batches; anything beyond in the file is not part of the log.
    var size: Int
    /// The offset after the last batch (`baseOffset` when empty).
    var nextOffset: Offset
    /// The largest batch maxTimestamp, or `noTimestamp`.
    var maxTimestamp: Int64 = noTimestamp
    /// The first batch's maxTimestamp (what `segmentMsMax` counts from), or the time the
    /// segment was created or opened empty.
    var rollClockMs: Int64
    var index: [OffsetIndexEntry] = []
    var timeIndex: [TimeIndexEntry] = []
    /// Entries of `index` / `timeIndex` that the files hold.
    var indexEntriesOnDisk = 0
    var timeEntriesOnDisk = 0
    var indexFile: IOHandle?
    var timeIndexFile: IOHandle?
    /// Position of the last offset index entry (0 when none).
    var lastIndexedPosition = 0
    /// Counts writes; a flush records the count it fsynced, so that a write made while
    /// an fsync runs elsewhere keeps the segment dirty.
    var writeGeneration = 0
    var syncedGeneration = 0
    /// Bytes written since the last fsync.
    var dirty: Bool { writeGeneration != syncedGeneration }
    func markWritten() { writeGeneration &+= 1 }
    func markSynced() { syncedGeneration = writeGeneration }
    /// The index files hold entries that were dropped: cut them before writing more.
    var indexFilesNeedCut = false
    /// The first batch's maxTimestamp, once seen.
    var firstBatchMaxTimestamp: Int64?

    init(directory: String, baseOffset: Offset, file: IOHandle, size: Int, nowMs: Int64) {
        self.baseOffset = baseOffset
        let stem = directory + "/" + Segment.fileStem(baseOffset)
        self.logPath = stem + ".log"
        self.indexPath = stem + ".index"
        self.timeIndexPath = stem + ".timeindex"
        self.file = file
        self.size = size
        self.nextOffset = baseOffset
        self.rollClockMs = nowMs
    }

    /// `baseOffset` zero-padded to 20 digits.
    static func fileStem(_ offset: Offset) -> String {
        let digits = String(offset.value)
        return String(repeating: "0", count: max(0, 20 - digits.count)) + digits
    }

    /// The base offset a `<20 digits>` stem names, or nil.
    static func parseStem(_ stem: Substring) -> Offset? {
        guard stem.count == 20, stem.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let value = Int64(stem) else {
            return nil
        }
        return Offset(value)
    }

    var isEmpty: Bool { size == 0 }

    // MARK: Index maintenance

    /// Records a batch appended at `position` (batches must come in file order).
    func noteBatch(
        at position: Int, firstOffset: Offset, nextOffset: Offset, maxTimestamp batchMax: Int64,
        indexIntervalBytes: Int
    ) {
        if position > lastIndexedPosition, position - lastIndexedPosition >= indexIntervalBytes,
            let relative = RelativeOffset(firstOffset, base: baseOffset), let filePosition = UInt32(exactly: position)
        {
            index.append(OffsetIndexEntry(relativeOffset: relative, position: filePosition))
            lastIndexedPosition = position
            let maxSoFar = max(maxTimestamp, batchMax)
            if maxSoFar > (timeIndex.last?.maxTimestamp ?? noTimestamp) {
                timeIndex.append(TimeIndexEntry(maxTimestamp: maxSoFar, relativeOffset: relative))
            }
        }
        if position == 0 { firstBatchMaxTimestamp = batchMax }
        maxTimestamp = max(maxTimestamp, batchMax)
        self.nextOffset = nextOffset
    }

    /// `noteBatch` for a parsed header.
    func noteBatch(at position: Int, header: RecordBatchHeader, indexIntervalBytes: Int) {
        noteBatch(
            at: position, firstOffset: header.firstOffset, nextOffset: header.nextOffset,
            maxTimestamp: header.maxTimestamp, indexIntervalBytes: indexIntervalBytes)
    }

    /// Forgets everything about the batches; they are about to be walked again.
    func resetIndexes(nowMs: Int64) {
        index.removeAll(keepingCapacity: true)
        timeIndex.removeAll(keepingCapacity: true)
        lastIndexedPosition = 0
        maxTimestamp = noTimestamp
        nextOffset = baseOffset
        rollClockMs = nowMs
        firstBatchMaxTimestamp = nil
        indexFilesNeedCut = true
        indexEntriesOnDisk = 0
        timeEntriesOnDisk = 0
    }

    /// Drops index entries for batches at `position` or later (after a truncation there).
    func dropIndexEntries(fromPosition position: Int, fromOffset offset: Offset) {
        while let last = index.last, Int(last.position) >= position { index.removeLast() }
        while let last = timeIndex.last, last.relativeOffset.absolute(base: baseOffset) >= offset {
            timeIndex.removeLast()
        }
        if indexEntriesOnDisk > index.count || timeEntriesOnDisk > timeIndex.count { indexFilesNeedCut = true }
        indexEntriesOnDisk = min(indexEntriesOnDisk, index.count)
        timeEntriesOnDisk = min(timeEntriesOnDisk, timeIndex.count)
        if position == 0 { firstBatchMaxTimestamp = nil }
        lastIndexedPosition = Int(index.last?.position ?? 0)
    }

    /// Where to start a header walk for `offset`: the last indexed batch at or before it.
    func floorPosition(for offset: Offset) -> Int {
        guard let target = RelativeOffset(offset, base: baseOffset) else { return 0 }
        var low = 0
        var high = index.count
        while low < high {
            let mid = (low + high) / 2
            if index[mid].relativeOffset <= target { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? 0 : Int(index[low - 1].position)
    }

    /// The offset of an indexed batch after which every batch's maxTimestamp stays below
    /// `timestamp`, or nil when the scan must start at the first batch.
    func timeFloorOffset(below timestamp: Int64) -> Offset? {
        var low = 0
        var high = timeIndex.count
        while low < high {
            let mid = (low + high) / 2
            if timeIndex[mid].maxTimestamp < timestamp { low = mid + 1 } else { high = mid }
        }
        return low == 0 ? nil : timeIndex[low - 1].relativeOffset.absolute(base: baseOffset)
    }

    // MARK: Index files

    /// Writes entries the files lack (one pwrite per file), cutting the files first if
    /// they hold entries that were dropped. No fsync: index files are derived data.
    func writePendingIndexEntries(io: any FileIO) throws(FileIOError) {
        let needCut = indexFilesNeedCut
        if index.count != indexEntriesOnDisk || indexFile == nil || needCut {
            let handle: IOHandle
            if let open = indexFile { handle = open } else { handle = try io.open(indexPath, mode: .createIfMissing) }
            indexFile = handle
            if needCut { try io.truncate(handle, to: ByteCount(indexEntriesOnDisk * OffsetIndexEntry.size)) }
            if index.count > indexEntriesOnDisk {
                let pending = index[indexEntriesOnDisk...]
                var buffer = ByteBufferAllocator().buffer(capacity: pending.count * OffsetIndexEntry.size)
                for entry in pending {
                    buffer.writeInteger(entry.relativeOffset.value)
                    buffer.writeInteger(entry.position)
                }
                try io.write(handle, at: FilePosition(indexEntriesOnDisk * OffsetIndexEntry.size), from: buffer)
                indexEntriesOnDisk = index.count
            }
        }
        if timeIndex.count != timeEntriesOnDisk || timeIndexFile == nil || needCut {
            let handle: IOHandle
            if let open = timeIndexFile {
                handle = open
            } else {
                handle = try io.open(timeIndexPath, mode: .createIfMissing)
            }
            timeIndexFile = handle
            if needCut { try io.truncate(handle, to: ByteCount(timeEntriesOnDisk * TimeIndexEntry.size)) }
            if timeIndex.count > timeEntriesOnDisk {
                let pending = timeIndex[timeEntriesOnDisk...]
                var buffer = ByteBufferAllocator().buffer(capacity: pending.count * TimeIndexEntry.size)
                for entry in pending {
                    buffer.writeInteger(entry.maxTimestamp)
                    buffer.writeInteger(entry.relativeOffset.value)
                }
                try io.write(handle, at: FilePosition(timeEntriesOnDisk * TimeIndexEntry.size), from: buffer)
                timeEntriesOnDisk = timeIndex.count
            }
        }
        indexFilesNeedCut = false
    }

    /// Whether the index files lack entries or hold dropped ones.
    var hasPendingIndexEntries: Bool {
        indexFilesNeedCut || index.count != indexEntriesOnDisk || timeIndex.count != timeEntriesOnDisk
    }

    /// Closes the index files (the segment is no longer active).
    func closeIndexFiles(io: any FileIO) {
        if let indexFile { io.close(indexFile) }
        if let timeIndexFile { io.close(timeIndexFile) }
        indexFile = nil
        timeIndexFile = nil
    }

    /// Closes every file of the segment.
    func close(io: any FileIO) {
        closeIndexFiles(io: io)
        io.close(file)
    }
}

/// Reads a file through a window buffer, so that walking many small batch headers
/// costs one pread per window rather than one per batch.
struct FileWindow {
    var buffer: ByteBuffer
    /// The file position of the byte at buffer index 0.
    var start = 0
    /// The file the window holds bytes of.
    var descriptor: Int32 = -1
    let windowBytes: Int

    init(windowBytes: Int) {
        self.windowBytes = windowBytes
        self.buffer = ByteBufferAllocator().buffer(capacity: windowBytes)
    }

    /// Forgets the window's contents (the file may have changed since).
    mutating func invalidate() {
        buffer.clear()
        start = 0
        descriptor = -1
    }

    /// Makes `[position, position + count)` available; false when the file (as far as
    /// `end`) is shorter.
    mutating func load(io: any FileIO, file: IOHandle, position: Int, count: Int, end: Int)
        throws(FileIOError) -> Bool
    {
        if position + count > end { return false }
        if file.descriptor == descriptor, position >= start, position + count <= start + buffer.writerIndex {
            return true
        }
        buffer.clear()
        start = position
        descriptor = file.descriptor
        let wanted = min(max(count, windowBytes), end - position)
        let got = try io.read(file, at: FilePosition(position), count: wanted, into: &buffer)
        return got >= count
    }

    /// The buffer index of a file position that `load` made available.
    func index(of position: Int) -> Int { position - start }
}

/// Why a walk over batches stopped before the end.
enum WalkStop: Equatable {
    /// Fewer bytes than a header or than the batch's length says.
    case torn(String)
    /// The header or the CRC is wrong.
    case corrupt(String)
    /// A batch's baseOffset is not the offset after the previous batch.
    case offsetGap(expected: Offset, found: Offset)

    var reason: String {
        switch self {
        case .torn(let why): "incomplete batch: \(why)"
        case .corrupt(let why): why
        case .offsetGap(let expected, let found): "batch starts at offset \(found), expected \(expected)"
        }
    }
}

/// Walks the batches of `file` from `position` to `end`, calling `body` with each
/// batch's position and header until it returns false. Checks each length against
/// `end`, and the CRC when `verifyCRC`; when `expected` is given, each batch must start
/// at the offset after the previous one. Returns where it stopped and why, if early.
func walkBatches(
    io: any FileIO,
    file: IOHandle,
    from position: Int,
    end: Int,
    expected: Offset?,
    verifyCRC: Bool,
    window: inout FileWindow,
    _ body: (Int, RecordBatchHeader) -> Bool
) throws(FileIOError) -> (position: Int, stop: WalkStop?) {
    var position = position
    var expected = expected
    while position < end {
        guard try window.load(io: io, file: file, position: position, count: RecordBatchHeader.size, end: end)
        else {
            return (position, .torn("\(end - position) bytes left at the end, less than a batch header"))
        }
        let header: RecordBatchHeader
        do throws(RecordBatchError) {
            header = try RecordBatchHeader.read(from: window.buffer, at: window.index(of: position))
        } catch {
            return (position, .corrupt("\(error)"))
        }
        let total = header.totalSize
        guard position + total <= end else {
            return (position, .torn("batch of \(total) bytes, only \(end - position) left"))
        }
        if let offset = expected, header.firstOffset != offset {
            return (position, .offsetGap(expected: offset, found: header.firstOffset))
        }
        guard header.lastOffsetDelta >= 0 else {
            return (position, .corrupt("negative lastOffsetDelta \(header.lastOffsetDelta)"))
        }
        if verifyCRC {
            guard try window.load(io: io, file: file, position: position, count: total, end: end) else {
                return (position, .torn("file shorter than expected"))
            }
            do throws(RecordBatchError) {
                _ = try RecordBatch.validate(window.buffer, at: window.index(of: position))
            } catch {
                return (position, .corrupt("\(error)"))
            }
        }
        if !body(position, header) { return (position, nil) }
        position += total
        if expected != nil { expected = header.nextOffset }
    }
    return (position, nil)
}
