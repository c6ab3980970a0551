import Records

/// Why a log stopped accepting writes. Only reopening the log clears it.
public enum LogFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// A write found the disk (or quota) full; part of the write may be on disk.
    case diskFull(path: String)
    /// A write failed for another reason.
    case writeFailed(path: String, errno: Int32)
    /// An fsync failed: what was written since the last good fsync may never reach the disk.
    case fsyncFailed(path: String, errno: Int32)
    /// Truncating or removing a file failed half way through a log change.
    case metadataFailed(FileIOError)

    /// Says what failed and where.
    public var description: String {
        switch self {
        case .diskFull(let path): "disk full while writing \(path)"
        case .writeFailed(let path, let errno): "write to \(path) failed (errno \(errno))"
        case .fsyncFailed(let path, let errno): "fsync of \(path) failed (errno \(errno))"
        case .metadataFailed(let error): "file operation failed: \(error)"
        }
    }
}

/// Everything `PartitionLog` can refuse or report. Every case says what was found.
public enum LogError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A `LogConfig` limit is out of range.
    case invalidConfig(String)
    /// A disk operation failed outside an append or flush (open, read, list).
    case io(FileIOError)
    /// An earlier write or fsync failed; the log refuses writes until it is reopened.
    case failed(LogFailure)
    /// The log was closed.
    case closed
    /// A flush begun with `beginFlush` has not completed; truncation, retention and
    /// close must wait for it.
    case flushInProgress
    /// An append was handed no bytes.
    case emptyAppend
    /// A batch is larger than `batchBytesMax` (Kafka MESSAGE_TOO_LARGE).
    case batchTooLarge(size: Int, limit: Int)
    /// The `index`-th batch of an append is malformed or fails its CRC (Kafka CORRUPT_MESSAGE).
    case invalidBatch(index: Int, reason: RecordBatchError)
    /// A replicated append does not start at the log end offset, or its batches leave a gap.
    case nonContiguousAppend(expected: Offset, found: Offset)
    /// Offsets would overflow Int64 or a segment's relative offsets.
    case offsetOverflow(Offset)
    /// An offset outside `logStartOffset...logEndOffset`.
    case offsetOutOfRange(requested: Offset, logStart: Offset, logEnd: Offset)
    /// A truncation point inside a batch: truncation must land on a batch boundary.
    case notBatchBoundary(requested: Offset, batchFirst: Offset, batchLast: Offset)
    /// A stored batch is damaged: torn, wrong length, wrong offset or bad CRC.
    case corruptBatch(segment: String, position: FilePosition, offset: Offset?, reason: String)
    /// A file named like a segment whose name is not a 20-digit base offset.
    case invalidSegmentName(String)
    /// A segment whose first batch's base offset differs from its file name.
    case segmentBaseMismatch(segment: String, firstBatchOffset: Offset)
    /// A segment that does not end where the next one begins (below the recovery point).
    case segmentsNotContiguous(segment: String, endOffset: Offset, nextBase: Offset)

    /// A sentence for logs and operators.
    public var description: String {
        switch self {
        case .invalidConfig(let why): "invalid log configuration: \(why)"
        case .io(let error): "I/O error: \(error)"
        case .failed(let failure): "log failed earlier and refuses writes until reopened: \(failure)"
        case .closed: "log is closed"
        case .flushInProgress: "a flush is in progress"
        case .emptyAppend: "append of zero bytes"
        case .batchTooLarge(let size, let limit): "batch of \(size) bytes exceeds batchBytesMax \(limit)"
        case .invalidBatch(let index, let reason): "batch #\(index) of the append is invalid: \(reason)"
        case .nonContiguousAppend(let expected, let found): "append must start at offset \(expected), found \(found)"
        case .offsetOverflow(let offset): "offset overflow at \(offset)"
        case .offsetOutOfRange(let requested, let start, let end):
            "offset \(requested) is outside the log [\(start), \(end)]"
        case .notBatchBoundary(let requested, let first, let last):
            "offset \(requested) is inside batch \(first)...\(last), not at a batch boundary"
        case .corruptBatch(let segment, let position, let offset, let reason):
            "corrupt batch in \(segment) at position \(position)"
                + (offset.map { " (offset \($0))" } ?? "") + ": \(reason)"
        case .invalidSegmentName(let name): "file \(name) is not named by a 20-digit base offset"
        case .segmentBaseMismatch(let segment, let first):
            "segment \(segment) starts with offset \(first), which differs from its name"
        case .segmentsNotContiguous(let segment, let end, let next):
            "segment \(segment) ends at offset \(end) but the next segment starts at \(next)"
        }
    }
}
