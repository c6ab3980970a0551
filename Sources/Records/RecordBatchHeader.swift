import NIOCore

/// Compression codec, attribute bits 0–2.
public enum CompressionCodec: Int16, Sendable, CaseIterable, CustomStringConvertible {
    case none = 0
    case gzip = 1
    case snappy = 2
    case lz4 = 3
    case zstd = 4

    /// The name Kafka configuration uses (`compression.type`).
    public var description: String {
        switch self {
        case .none: "none"
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }
}

/// The `attributes` int16 of a batch header.
///
/// bits 0–2 codec, bit 3 timestamp type (1 = LogAppendTime), bit 4 transactional,
/// bit 5 control, bit 6 delete horizon; the rest unused.
public struct BatchAttributes: Hashable, Sendable {
    /// The raw int16.
    public var rawValue: Int16

    /// Wraps a raw attributes field.
    @inlinable public init(rawValue: Int16) { self.rawValue = rawValue }

    /// Builds attributes from their parts.
    public init(
        codec: CompressionCodec = .none,
        logAppendTime: Bool = false,
        transactional: Bool = false,
        control: Bool = false
    ) {
        var raw = codec.rawValue
        if logAppendTime { raw |= 1 << 3 }
        if transactional { raw |= 1 << 4 }
        if control { raw |= 1 << 5 }
        self.rawValue = raw
    }

    /// The codec, or nil for the unassigned values 5–7.
    public var codec: CompressionCodec? { CompressionCodec(rawValue: rawValue & 0x7) }
    /// Timestamp type bit: LogAppendTime when set, CreateTime otherwise.
    public var isLogAppendTime: Bool { rawValue & (1 << 3) != 0 }
    /// Part of a transaction.
    public var isTransactional: Bool { rawValue & (1 << 4) != 0 }
    /// A control batch (transaction markers, LEADER_CHANGE): consumers skip it.
    public var isControl: Bool { rawValue & (1 << 5) != 0 }
    /// The delete-horizon bit of compacted logs.
    public var hasDeleteHorizon: Bool { rawValue & (1 << 6) != 0 }
}

/// Why a record batch was refused. Every case says what was found.
public enum RecordBatchError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Fewer bytes than the batch needs.
    case truncated(needed: Int, available: Int)
    /// `batchLength` is below the header size or above the limit.
    case invalidLength(Int32)
    /// Not a magic 2 batch.
    case unsupportedMagic(Int8)
    /// The stored CRC does not match the bytes.
    case crcMismatch(stored: UInt32, computed: UInt32)
    /// `lastOffsetDelta + 1 != recordsCount`, or no records.
    case invalidRecordCount(lastOffsetDelta: Int32, recordsCount: Int32)
    /// The whole batch is larger than the configured maximum.
    case tooLarge(size: Int, limit: Int)
    /// A record inside the batch does not parse.
    case malformedRecord(String)
    /// The compressed records section does not decompress.
    case compression(String)
    /// A codec Keel cannot encode or decode here.
    case unsupportedCodec(Int16)
    /// A control batch where only client batches are accepted (clients may not produce them).
    case controlBatchNotAllowed

    public var description: String {
        switch self {
        case .truncated(let needed, let available): "truncated batch: needs \(needed) bytes, \(available) present"
        case .invalidLength(let length): "invalid batch length \(length)"
        case .unsupportedMagic(let magic): "unsupported magic \(magic) (only record batch v2 is accepted)"
        case .crcMismatch(let stored, let computed):
            "CRC mismatch: stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16))"
        case .invalidRecordCount(let delta, let count): "lastOffsetDelta \(delta) does not match recordsCount \(count)"
        case .tooLarge(let size, let limit): "batch of \(size) bytes exceeds the limit of \(limit) bytes"
        case .malformedRecord(let why): "malformed record: \(why)"
        case .compression(let why): "compression: \(why)"
        case .unsupportedCodec(let raw): "unsupported compression codec \(raw)"
        case .controlBatchNotAllowed: "control batches may not be produced by clients"
        }
    }
}

/// The 61-byte header of a record batch v2, all integers big-endian.
///
/// ```
/// off size field
///   0   8  baseOffset            (rewritten by the broker; not under the CRC)
///   8   4  batchLength           (bytes after this field = total size - 12)
///  12   4  partitionLeaderEpoch  (the Raft term; not under the CRC)
///  16   1  magic = 2
///  17   4  crc                   (CRC-32C of bytes 21 ..< end)
///  21   2  attributes
///  23   4  lastOffsetDelta
///  27   8  baseTimestamp
///  35   8  maxTimestamp
///  43   8  producerId            (-1 when not idempotent)
///  51   2  producerEpoch
///  53   4  baseSequence
///  57   4  recordsCount
///  61   …  records               (compressed as one blob when codec != none)
/// ```
public struct RecordBatchHeader: Hashable, Sendable {
    /// Size of the fixed header.
    public static let size = 61
    /// Bytes before `batchLength` counts: baseOffset and batchLength itself.
    public static let logOverhead = 12
    /// Where the CRC-covered bytes start.
    public static let crcStart = 21
    /// Field offsets used by in-place rewrites.
    public static let partitionLeaderEpochOffset = 12
    public static let magicOffset = 16
    public static let crcOffset = 17
    public static let attributesOffset = 21
    public static let maxTimestampOffset = 35

    public var baseOffset: Int64
    public var batchLength: Int32
    public var partitionLeaderEpoch: Int32
    public var magic: Int8
    public var crc: UInt32
    public var attributes: BatchAttributes
    public var lastOffsetDelta: Int32
    public var baseTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    public var recordsCount: Int32

    /// Creates a header; `batchLength` and `crc` are normally filled in by an encoder.
    public init(
        baseOffset: Int64 = 0,
        batchLength: Int32 = 0,
        partitionLeaderEpoch: Int32 = -1,
        magic: Int8 = 2,
        crc: UInt32 = 0,
        attributes: BatchAttributes = BatchAttributes(),
        lastOffsetDelta: Int32 = 0,
        baseTimestamp: Int64 = 0,
        maxTimestamp: Int64 = 0,
        producerId: Int64 = -1,
        producerEpoch: Int16 = -1,
        baseSequence: Int32 = -1,
        recordsCount: Int32 = 0
    ) {
        self.baseOffset = baseOffset
        self.batchLength = batchLength
        self.partitionLeaderEpoch = partitionLeaderEpoch
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.lastOffsetDelta = lastOffsetDelta
        self.baseTimestamp = baseTimestamp
        self.maxTimestamp = maxTimestamp
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.recordsCount = recordsCount
    }

    /// Size of the whole batch on disk and on the wire.
    @inlinable public var totalSize: Int { Self.logOverhead + Int(batchLength) }
    /// The first offset of the batch.
    @inlinable public var firstOffset: Offset { Offset(baseOffset) }
    /// The last offset of the batch (`baseOffset + lastOffsetDelta`).
    @inlinable public var lastOffset: Offset { Offset(baseOffset + Int64(lastOffsetDelta)) }
    /// The offset after the batch.
    @inlinable public var nextOffset: Offset { Offset(baseOffset + Int64(lastOffsetDelta) + 1) }

    /// Reads the header at `index` without moving the reader index.
    ///
    /// Checks only what the header alone can tell: enough bytes for the header, a
    /// plausible `batchLength` and magic 2. It does not check the CRC; see
    /// `RecordBatch.validate`.
    public static func read(from buffer: ByteBuffer, at index: Int) throws(RecordBatchError) -> RecordBatchHeader {
        let available = buffer.writerIndex - index
        guard available >= Self.logOverhead else {
            throw .truncated(needed: Self.size, available: max(0, available))
        }
        let batchLength: Int32 = buffer.getInteger(at: index + 8)!
        guard batchLength >= Int32(Self.size - Self.logOverhead) else { throw .invalidLength(batchLength) }
        guard available >= Self.size else { throw .truncated(needed: Self.size, available: available) }
        let magic: Int8 = buffer.getInteger(at: index + Self.magicOffset)!
        guard magic == 2 else { throw .unsupportedMagic(magic) }
        return RecordBatchHeader(
            baseOffset: buffer.getInteger(at: index)!,
            batchLength: batchLength,
            partitionLeaderEpoch: buffer.getInteger(at: index + 12)!,
            magic: magic,
            crc: buffer.getInteger(at: index + 17)!,
            attributes: BatchAttributes(rawValue: buffer.getInteger(at: index + 21)!),
            lastOffsetDelta: buffer.getInteger(at: index + 23)!,
            baseTimestamp: buffer.getInteger(at: index + 27)!,
            maxTimestamp: buffer.getInteger(at: index + 35)!,
            producerId: buffer.getInteger(at: index + 43)!,
            producerEpoch: buffer.getInteger(at: index + 51)!,
            baseSequence: buffer.getInteger(at: index + 53)!,
            recordsCount: buffer.getInteger(at: index + 57)!
        )
    }

    /// Writes the 61 header bytes at the writer index, exactly as they stand here
    /// (the CRC is written as stored, not computed).
    public func write(to buffer: inout ByteBuffer) {
        buffer.writeInteger(baseOffset)
        buffer.writeInteger(batchLength)
        buffer.writeInteger(partitionLeaderEpoch)
        buffer.writeInteger(magic)
        buffer.writeInteger(crc)
        buffer.writeInteger(attributes.rawValue)
        buffer.writeInteger(lastOffsetDelta)
        buffer.writeInteger(baseTimestamp)
        buffer.writeInteger(maxTimestamp)
        buffer.writeInteger(producerId)
        buffer.writeInteger(producerEpoch)
        buffer.writeInteger(baseSequence)
        buffer.writeInteger(recordsCount)
    }
}

/// Operations on a whole batch that lies in a ByteBuffer, without decoding records.
public enum RecordBatch {
    /// Reads and checks the batch at `index`: header, full length present, size limit,
    /// record count, and the CRC over bytes 21 ..< end. Returns the header.
    public static func validate(
        _ buffer: ByteBuffer,
        at index: Int,
        maxBatchBytes: Int = Int(Int32.max)
    ) throws(RecordBatchError) -> RecordBatchHeader {
        let header = try RecordBatchHeader.read(from: buffer, at: index)
        let total = header.totalSize
        guard total <= maxBatchBytes else { throw .tooLarge(size: total, limit: maxBatchBytes) }
        let available = buffer.writerIndex - index
        guard available >= total else { throw .truncated(needed: total, available: available) }
        // The CRC comes before the field checks, as in Kafka's `DefaultRecordBatch.ensureValid`: a bit
        // flipped in transit is reported as corruption (retriable), not as a bad record count.
        let computed = CRC32C.checksum(
            buffer, at: index + RecordBatchHeader.crcStart, length: total - RecordBatchHeader.crcStart)
        guard computed == header.crc else { throw .crcMismatch(stored: header.crc, computed: computed) }
        guard header.recordsCount >= 0, header.lastOffsetDelta >= 0 else {
            throw .invalidRecordCount(lastOffsetDelta: header.lastOffsetDelta, recordsCount: header.recordsCount)
        }
        return header
    }

    /// Checks the stricter rules Kafka applies to a batch a client produced:
    /// `recordsCount > 0`, `lastOffsetDelta + 1 == recordsCount`, not a control batch.
    public static func validateClientBatch(_ header: RecordBatchHeader) throws(RecordBatchError) {
        guard !header.attributes.isControl else { throw .controlBatchNotAllowed }
        guard header.recordsCount > 0, Int64(header.lastOffsetDelta) + 1 == Int64(header.recordsCount) else {
            throw .invalidRecordCount(lastOffsetDelta: header.lastOffsetDelta, recordsCount: header.recordsCount)
        }
    }

    /// Rewrites `baseOffset` in place. The CRC does not cover it, so it stays valid.
    @inlinable
    public static func setBaseOffset(_ offset: Offset, in buffer: inout ByteBuffer, at index: Int) {
        buffer.setInteger(offset.value, at: index)
    }

    /// Rewrites `partitionLeaderEpoch` in place. The CRC does not cover it.
    @inlinable
    public static func setPartitionLeaderEpoch(_ epoch: Int32, in buffer: inout ByteBuffer, at index: Int) {
        buffer.setInteger(epoch, at: index + RecordBatchHeader.partitionLeaderEpochOffset)
    }

    /// Computes the CRC of the batch at `index` (whose `batchLength` is already set)
    /// and stores it in the header.
    public static func updateCRC(in buffer: inout ByteBuffer, at index: Int) {
        let batchLength: Int32 = buffer.getInteger(at: index + 8)!
        let total = RecordBatchHeader.logOverhead + Int(batchLength)
        let crc = CRC32C.checksum(buffer, at: index + RecordBatchHeader.crcStart, length: total - RecordBatchHeader.crcStart)
        buffer.setInteger(crc, at: index + RecordBatchHeader.crcOffset)
    }
}
