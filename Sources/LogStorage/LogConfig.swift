import Records

/// When appended bytes are forced to the disk.
public enum FlushPolicy: Sendable, Equatable {
    /// Group commit: appends do not fsync; `PartitionLog.flush()` fsyncs everything
    /// appended since the last flush, and only then is it durable.
    case fsync
    /// Leave it to the page cache and rely on replication, as Kafka does by default:
    /// `durableEndOffset` is whatever was written.
    case none
}

/// The limits of one partition log; every name carries its unit. Checked by
/// `validate()`, which `PartitionLog.open` calls.
public struct LogConfig: Sendable, Equatable {
    /// A segment rolls before an append would make it larger than this (`segment.bytes`).
    public var segmentBytesMax: Int
    /// A segment rolls once its first batch's max timestamp is this old (`segment.ms`).
    public var segmentMsMax: Int64
    /// Bytes of batches between two offset index entries (`index.interval.bytes`).
    public var indexIntervalBytes: Int
    /// The largest batch a client may append (`max.message.bytes`).
    public var batchBytesMax: Int
    /// Retention deletes old segments while the log stays at least this large;
    /// nil = unlimited (`retention.bytes` = -1).
    public var retentionBytesMax: Int?
    /// Retention deletes segments whose newest batch is older than this;
    /// nil = unlimited (`retention.ms` = -1).
    public var retentionMsMax: Int64?
    /// When appends reach the disk.
    public var flushPolicy: FlushPolicy

    /// 7 days in milliseconds, Kafka's default for `segment.ms` and `retention.ms`.
    public static let sevenDaysMs: Int64 = 7 * 24 * 3600 * 1000

    /// Kafka's defaults: 128 MiB segments, 7-day segment.ms and retention.ms, 4 KiB index interval,
    /// 1048588-byte batches, unlimited retention bytes, fsync group commit.
    public init(
        segmentBytesMax: Int = 128 * 1024 * 1024,
        segmentMsMax: Int64 = LogConfig.sevenDaysMs,
        indexIntervalBytes: Int = 4096,
        batchBytesMax: Int = 1_048_588,
        retentionBytesMax: Int? = nil,
        retentionMsMax: Int64? = LogConfig.sevenDaysMs,
        flushPolicy: FlushPolicy = .fsync
    ) {
        self.segmentBytesMax = segmentBytesMax
        self.segmentMsMax = segmentMsMax
        self.indexIntervalBytes = indexIntervalBytes
        self.batchBytesMax = batchBytesMax
        self.retentionBytesMax = retentionBytesMax
        self.retentionMsMax = retentionMsMax
        self.flushPolicy = flushPolicy
    }

    /// Throws `LogError.invalidConfig` naming the first limit out of range.
    public func validate() throws(LogError) {
        let fileMax = Int(Int32.max)
        guard segmentBytesMax >= RecordBatchHeader.size, segmentBytesMax <= fileMax else {
            throw .invalidConfig("segmentBytesMax \(segmentBytesMax) must be in \(RecordBatchHeader.size)...\(fileMax)")
        }
        guard segmentMsMax >= 1 else { throw .invalidConfig("segmentMsMax \(segmentMsMax) must be >= 1") }
        guard indexIntervalBytes >= 0, indexIntervalBytes <= fileMax else {
            throw .invalidConfig("indexIntervalBytes \(indexIntervalBytes) must be in 0...\(fileMax)")
        }
        guard batchBytesMax >= RecordBatchHeader.size, batchBytesMax <= fileMax else {
            throw .invalidConfig("batchBytesMax \(batchBytesMax) must be in \(RecordBatchHeader.size)...\(fileMax)")
        }
        if let retentionBytesMax, retentionBytesMax < 0 {
            throw .invalidConfig("retentionBytesMax \(retentionBytesMax) must be >= 0 (nil = unlimited)")
        }
        if let retentionMsMax, retentionMsMax < 0 {
            throw .invalidConfig("retentionMsMax \(retentionMsMax) must be >= 0 (nil = unlimited)")
        }
    }
}
