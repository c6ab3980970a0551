import NIOCore

/// Builds one record batch v2: records are encoded straight into the batch's buffer as
/// they are appended, then `build` fills in the 61-byte header (and compresses the
/// records section for LZ4).
///
/// The buffer starts with room for the header, so an uncompressed batch is finished in
/// place, without copying its records; an LZ4 batch is compressed from that buffer
/// straight into the new batch's buffer. Appending allocates nothing per record beyond
/// the buffer growing.
///
/// Timestamps follow Kafka's `MemoryRecordsBuilder`: `baseTimestamp` is the first
/// record's timestamp unless given, each record stores its delta to it, and the header's
/// `maxTimestamp` is the largest record timestamp.
public struct RecordBatchBuilder: Sendable {
    private var buffer: ByteBuffer
    private let allocator: ByteBufferAllocator
    /// Records appended so far.
    public private(set) var count: Int32 = 0
    /// The offset delta of the last record appended (-1 before the first).
    public private(set) var lastOffsetDelta: Int32 = -1
    /// The batch's base timestamp: given at creation, or the first record's timestamp.
    public private(set) var baseTimestamp: Int64?
    /// The largest record timestamp so far (`Int64.min` before the first record).
    public private(set) var maxTimestamp: Int64 = .min

    /// Creates an empty builder.
    ///
    /// - Parameters:
    ///   - baseTimestamp: the batch's base timestamp; nil takes the first record's.
    ///   - capacity: initial bytes reserved for header and records; the buffer grows as needed.
    public init(
        baseTimestamp: Int64? = nil,
        capacity: Int = 16 * 1024,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) {
        self.baseTimestamp = baseTimestamp
        self.allocator = allocator
        self.buffer = allocator.buffer(capacity: max(capacity, RecordBatchHeader.size))
        self.buffer.writeRepeatingByte(0, count: RecordBatchHeader.size)
    }

    /// Bytes of the uncompressed records section so far.
    public var recordsBytes: Int { buffer.writerIndex - RecordBatchHeader.size }

    /// Bytes of the batch if built uncompressed now.
    public var uncompressedBatchBytes: Int { buffer.writerIndex }

    /// Appends a record with the next offset delta.
    ///
    /// - Parameters:
    ///   - timestamp: the record's timestamp in milliseconds since the epoch (CreateTime).
    ///   - key: the key's readable bytes, or nil for a null key.
    ///   - value: the value's readable bytes, or nil for a null value.
    ///   - headers: the record's headers, in order.
    public mutating func append(
        timestamp: Int64,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader] = []
    ) {
        let base = baseTimestamp ?? timestamp
        baseTimestamp = base
        let offsetDelta = lastOffsetDelta &+ 1
        precondition(offsetDelta >= 0, "a batch holds at most Int32.max records")
        Record.write(
            attributes: 0, timestampDelta: timestamp &- base, offsetDelta: offsetDelta,
            key: key, value: value, headers: headers, to: &buffer
        )
        noteAppended(offsetDelta: offsetDelta, timestamp: timestamp)
    }

    /// Appends `record` exactly as given: its own offset and timestamp deltas.
    ///
    /// The builder must have a base timestamp (given at creation or from an earlier
    /// append), and offset deltas must increase.
    public mutating func append(_ record: Record) {
        guard let base = baseTimestamp else {
            preconditionFailure("append(_: Record) needs a base timestamp: pass one to init")
        }
        precondition(record.offsetDelta > lastOffsetDelta, "offset deltas must increase within a batch")
        record.write(to: &buffer)
        noteAppended(offsetDelta: record.offsetDelta, timestamp: base &+ record.timestampDelta)
    }

    private mutating func noteAppended(offsetDelta: Int32, timestamp: Int64) {
        count += 1
        lastOffsetDelta = offsetDelta
        maxTimestamp = max(maxTimestamp, timestamp)
    }

    /// Finishes the batch: writes the header, compresses the records section when `codec`
    /// is `.lz4`, sets `batchLength` and computes the CRC.
    ///
    /// - Parameters:
    ///   - codec: `.none` or `.lz4`; other codecs throw `unsupportedCodec`.
    ///   - lz4Level: the LZ4 compression level (0 = fast, up to 12).
    ///   - baseOffset: the first offset (a broker assigns it on append; clients send 0).
    ///   - partitionLeaderEpoch: the leader epoch (Raft term), -1 from clients.
    ///   - producerId: the idempotent producer id, -1 if none.
    ///   - producerEpoch: the producer epoch, -1 if none.
    ///   - baseSequence: the sequence number of the first record, -1 if none.
    ///   - isTransactional: sets attribute bit 4.
    ///   - isControl: sets attribute bit 5 (control batches; see `controlBatch`).
    ///   - logAppendTime: when given, sets the LogAppendTime attribute and uses it as `maxTimestamp`.
    /// - Returns: the whole batch, from its first byte to its last.
    public consuming func build(
        codec: CompressionCodec = .none,
        lz4Level: Int32 = LZ4Frame.levelDefault,
        baseOffset: Offset = .zero,
        partitionLeaderEpoch: Int32 = -1,
        producerId: Int64 = -1,
        producerEpoch: Int16 = -1,
        baseSequence: Int32 = -1,
        isTransactional: Bool = false,
        isControl: Bool = false,
        logAppendTime: Int64? = nil
    ) throws(RecordBatchError) -> ByteBuffer {
        precondition(count > 0, "a built batch holds at least one record")
        var header = RecordBatchHeader(
            baseOffset: baseOffset.value,
            partitionLeaderEpoch: partitionLeaderEpoch,
            attributes: BatchAttributes(
                codec: codec, logAppendTime: logAppendTime != nil, transactional: isTransactional,
                control: isControl
            ),
            lastOffsetDelta: lastOffsetDelta,
            baseTimestamp: baseTimestamp ?? 0,
            maxTimestamp: logAppendTime ?? maxTimestamp,
            producerId: producerId,
            producerEpoch: producerEpoch,
            baseSequence: baseSequence,
            recordsCount: count
        )
        // Take the buffer out so that the header is written into a uniquely owned storage.
        var batch = buffer
        buffer = ByteBuffer()
        switch codec {
        case .none:
            break
        case .lz4:
            var compressed = allocator.buffer(
                capacity: RecordBatchHeader.size + LZ4Frame.compressBound(batch.writerIndex - RecordBatchHeader.size)
            )
            compressed.writeRepeatingByte(0, count: RecordBatchHeader.size)
            batch.moveReaderIndex(to: RecordBatchHeader.size)
            do {
                try LZ4Frame.compress(batch, level: lz4Level, into: &compressed)
            } catch {
                throw .compression(error.description)
            }
            batch = compressed
        case .gzip, .snappy, .zstd:
            throw .unsupportedCodec(codec.rawValue)
        }
        Self.finish(&batch, header: &header)
        return batch
    }

    /// Writes `header` over the first 61 bytes of `batch`, with `batchLength` taken from
    /// the buffer's size and the CRC computed.
    static func finish(_ batch: inout ByteBuffer, header: inout RecordBatchHeader) {
        let end = batch.writerIndex
        precondition(end - RecordBatchHeader.logOverhead <= Int(Int32.max), "batch larger than 2 GiB")
        header.batchLength = Int32(end - RecordBatchHeader.logOverhead)
        batch.moveReaderIndex(to: 0)
        batch.moveWriterIndex(to: 0)
        header.write(to: &batch)
        batch.moveWriterIndex(to: end)
        RecordBatch.updateCRC(in: &batch, at: 0)
    }

    /// Builds an uncompressed control batch holding one control record.
    ///
    /// The record's key is `int16 version (0), int16 type`, as Kafka's `ControlRecordType`
    /// writes it (librdkafka refuses a version-0 key of any other size). Transaction
    /// markers (ABORT, COMMIT) are transactional and carry the producer id and epoch;
    /// LEADER_CHANGE is not transactional and has no producer.
    ///
    /// - Parameters:
    ///   - record: the control record's version and type.
    ///   - value: the control record's value (see `ControlRecord.endTransactionMarkerValue`
    ///     and `ControlRecord.leaderChangeValue`).
    ///   - timestamp: the record's timestamp, also the batch's base and max timestamp.
    public static func controlBatch(
        _ record: ControlRecord,
        value: ByteBuffer?,
        timestamp: Int64,
        baseOffset: Offset = .zero,
        partitionLeaderEpoch: Int32 = -1,
        producerId: Int64 = -1,
        producerEpoch: Int16 = -1,
        isTransactional: Bool = false
    ) -> ByteBuffer {
        var key = ByteBuffer()
        record.writeKey(to: &key)
        var builder = RecordBatchBuilder(baseTimestamp: timestamp, capacity: 128 + (value?.readableBytes ?? 0))
        builder.append(timestamp: timestamp, key: key, value: value)
        var header = RecordBatchHeader(
            baseOffset: baseOffset.value,
            partitionLeaderEpoch: partitionLeaderEpoch,
            attributes: BatchAttributes(transactional: isTransactional, control: true),
            lastOffsetDelta: 0,
            baseTimestamp: timestamp,
            maxTimestamp: timestamp,
            producerId: producerId,
            producerEpoch: producerEpoch,
            baseSequence: -1,
            recordsCount: 1
        )
        var batch = builder.buffer
        builder.buffer = ByteBuffer()
        finish(&batch, header: &header)
        return batch
    }
}
