import NIOCore

/// Reads the records of one batch, one at a time, decompressing the records section
/// first when the batch is LZ4-compressed.
///
/// Bounds are checked everywhere, so any bytes may be fed in: the result is a record
/// or a `RecordBatchError`, never a trap. The CRC is not checked here; `RecordBatch.records(of:)`
/// checks it, or call `RecordBatch.validate` first.
public struct RecordReader: Sendable {
    /// The batch's header.
    public let header: RecordBatchHeader
    private var records: ByteBuffer
    private var remaining: Int32

    /// Default bound on a decompressed records section: 64 MiB.
    public static let decompressedBytesMaxDefault = 64 * 1024 * 1024

    /// Prepares to read the batch at `index` of `buffer`.
    ///
    /// - Parameter decompressedBytesMax: the largest records section a compressed batch may
    ///   expand to; beyond it the batch is refused with `.compression`.
    public init(
        batch buffer: ByteBuffer,
        at index: Int,
        decompressedBytesMax: Int = RecordReader.decompressedBytesMaxDefault
    ) throws(RecordBatchError) {
        let header = try RecordBatchHeader.read(from: buffer, at: index)
        let available = buffer.writerIndex - index
        guard available >= header.totalSize else { throw .truncated(needed: header.totalSize, available: available) }
        guard header.recordsCount >= 0 else {
            throw .invalidRecordCount(lastOffsetDelta: header.lastOffsetDelta, recordsCount: header.recordsCount)
        }
        let sectionBytes = header.totalSize - RecordBatchHeader.size
        guard let section = buffer.getSlice(at: index + RecordBatchHeader.size, length: sectionBytes) else {
            throw .truncated(needed: header.totalSize, available: available)
        }
        switch header.attributes.codec {
        case .none?:
            self.records = section
        case .lz4?:
            do {
                self.records = try LZ4Frame.decompress(section, outputBytesMax: decompressedBytesMax)
            } catch {
                throw .compression(error.description)
            }
        case .gzip?, .snappy?, .zstd?, nil:
            throw .unsupportedCodec(header.attributes.rawValue & 0x7)
        }
        // Every record takes at least 7 bytes (length, attributes, two deltas, key, value,
        // header count): a larger count cannot be true.
        guard Int(header.recordsCount) <= self.records.readableBytes / 7 else {
            throw .malformedRecord(
                "recordsCount \(header.recordsCount) in a records section of \(self.records.readableBytes) bytes"
            )
        }
        self.header = header
        self.remaining = header.recordsCount
    }

    /// Records not read yet.
    public var recordsRemaining: Int { Int(remaining) }

    /// The next record, or nil after the last one.
    ///
    /// After the last record the records section must be used up exactly, as Kafka checks.
    public mutating func next() throws(RecordBatchError) -> Record? {
        guard remaining > 0 else {
            guard records.readableBytes == 0 else {
                let left = records.readableBytes
                records.moveReaderIndex(forwardBy: left)
                throw .malformedRecord("\(left) bytes after the last of \(header.recordsCount) records")
            }
            return nil
        }
        guard records.readableBytes > 0 else {
            let missing = remaining
            remaining = 0
            throw .malformedRecord("records section ends with \(missing) records missing")
        }
        remaining -= 1
        do {
            return try Record.read(from: &records)
        } catch {
            remaining = 0
            records.moveReaderIndex(to: records.writerIndex)
            throw error
        }
    }
}

extension RecordBatch {
    /// Validates the batch at `index` (header, length, CRC) and decodes all its records.
    ///
    /// Meant for tests, tools and clients; the broker's append path never needs it.
    public static func records(
        of buffer: ByteBuffer,
        at index: Int? = nil,
        decompressedBytesMax: Int = RecordReader.decompressedBytesMaxDefault
    ) throws(RecordBatchError) -> [Record] {
        let start = index ?? buffer.readerIndex
        _ = try validate(buffer, at: start)
        var reader = try RecordReader(batch: buffer, at: start, decompressedBytesMax: decompressedBytesMax)
        var result: [Record] = []
        result.reserveCapacity(reader.recordsRemaining)
        while let record = try reader.next() {
            result.append(record)
        }
        return result
    }

    /// Returns `batch` with its records section compressed by `codec`: the codec bits,
    /// `batchLength` and the CRC change; every other header field is kept exactly.
    ///
    /// The input must be an uncompressed v2 batch whose CRC is valid (checked here, so
    /// that compression never turns corrupt bytes into a batch with a fresh, valid CRC).
    /// The records are compressed straight from `batch` into the new buffer.
    public static func compress(
        _ batch: ByteBuffer,
        at index: Int,
        codec: CompressionCodec,
        lz4Level: Int32 = LZ4Frame.levelDefault,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(RecordBatchError) -> ByteBuffer {
        var header = try validate(batch, at: index)
        guard header.attributes.codec == CompressionCodec.none else {
            throw .compression("batch is already compressed (attributes \(header.attributes.rawValue))")
        }
        guard codec == .lz4 else { throw .unsupportedCodec(codec.rawValue) }
        let sectionBytes = header.totalSize - RecordBatchHeader.size
        guard let section = batch.getSlice(at: index + RecordBatchHeader.size, length: sectionBytes) else {
            throw .truncated(needed: header.totalSize, available: batch.writerIndex - index)
        }
        var output = allocator.buffer(capacity: RecordBatchHeader.size + LZ4Frame.compressBound(sectionBytes))
        output.writeRepeatingByte(0, count: RecordBatchHeader.size)
        do {
            try LZ4Frame.compress(section, level: lz4Level, into: &output)
        } catch {
            throw .compression(error.description)
        }
        header.attributes.rawValue = (header.attributes.rawValue & ~0x7) | codec.rawValue
        RecordBatchBuilder.finish(&output, header: &header)
        return output
    }
}

/// The type of a control record, the int16 at bytes 2–3 of its key (Kafka's `ControlRecordType`).
public struct ControlRecordType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    /// The raw type id; unknown ids are kept, as consumers ignore them.
    public var rawValue: Int16

    /// Wraps a raw type id.
    public init(rawValue: Int16) { self.rawValue = rawValue }

    /// A transaction was aborted.
    public static let abort = ControlRecordType(rawValue: 0)
    /// A transaction was committed.
    public static let commit = ControlRecordType(rawValue: 1)
    /// A new leader was elected; Keel appends it so Raft can commit the previous terms' entries.
    public static let leaderChange = ControlRecordType(rawValue: 2)
    /// KRaft snapshot header.
    public static let snapshotHeader = ControlRecordType(rawValue: 3)
    /// KRaft snapshot footer.
    public static let snapshotFooter = ControlRecordType(rawValue: 4)
    /// KRaft version record.
    public static let kraftVersion = ControlRecordType(rawValue: 5)
    /// KRaft voters record.
    public static let kraftVoters = ControlRecordType(rawValue: 6)

    /// Kafka's name for the type, as `ControlRecordType.java` spells it.
    public var description: String {
        switch rawValue {
        case 0: "ABORT"
        case 1: "COMMIT"
        case 2: "LEADER_CHANGE"
        case 3: "SNAPSHOT_HEADER"
        case 4: "SNAPSHOT_FOOTER"
        case 5: "KRAFT_VERSION"
        case 6: "KRAFT_VOTERS"
        default: "UNKNOWN(\(rawValue))"
        }
    }
}

/// The key of a record in a control batch: `int16 version, int16 type`.
public struct ControlRecord: Hashable, Sendable {
    /// The key's version; 0 is the only one defined.
    public var version: Int16
    /// The control record's type.
    public var type: ControlRecordType

    /// Size of a version-0 key.
    public static let keyBytes = 4

    /// Creates a control record key.
    public init(version: Int16 = 0, type: ControlRecordType) {
        self.version = version
        self.type = type
    }

    /// Parses the key of a record from a control batch, as Kafka does: at least 4 bytes,
    /// a non-negative version; unknown types are kept.
    public init(parsing record: Record) throws(RecordBatchError) {
        guard let key = record.key, key.readableBytes >= Self.keyBytes,
            let version = key.getInteger(at: key.readerIndex, as: Int16.self),
            let type = key.getInteger(at: key.readerIndex + 2, as: Int16.self)
        else {
            throw .malformedRecord("control record key of \(record.key?.readableBytes ?? -1) bytes")
        }
        guard version >= 0 else { throw .malformedRecord("control record key version \(version)") }
        self.init(version: version, type: ControlRecordType(rawValue: type))
    }

    /// Appends the 4-byte key.
    public func writeKey(to buffer: inout ByteBuffer) {
        buffer.writeInteger(version)
        buffer.writeInteger(type.rawValue)
    }

    /// The value of an ABORT or COMMIT marker: `int16 version (0), int32 coordinatorEpoch`
    /// (Kafka's `EndTransactionMarker`).
    public static func endTransactionMarkerValue(coordinatorEpoch: Int32) -> ByteBuffer {
        var value = ByteBuffer()
        value.writeInteger(Int16(0))
        value.writeInteger(coordinatorEpoch)
        return value
    }

    /// Reads the coordinator epoch from an ABORT or COMMIT marker's value.
    public static func coordinatorEpoch(ofEndTransactionMarker value: ByteBuffer?) throws(RecordBatchError) -> Int32 {
        guard let value, value.readableBytes >= 6,
            let version = value.getInteger(at: value.readerIndex, as: Int16.self),
            let epoch = value.getInteger(at: value.readerIndex + 2, as: Int32.self)
        else {
            throw .malformedRecord("end transaction marker of \(value?.readableBytes ?? -1) bytes")
        }
        guard version >= 0 else { throw .malformedRecord("end transaction marker version \(version)") }
        return epoch
    }

    /// The value of a LEADER_CHANGE record as Kafka writes it: `int16 0` (the message
    /// version), then `LeaderChangeMessage` v0, a flexible message: `int16 Version (0)`,
    /// `int32 LeaderId`, compact arrays `Voters` and `GrantingVoters` of `int32 VoterId`
    /// (each element followed by an empty tagged-field section), and an empty tagged-field section.
    public static func leaderChangeValue(leaderId: Int32, voters: [Int32], grantingVoters: [Int32]) -> ByteBuffer {
        var value = ByteBuffer()
        value.writeInteger(Int16(0))
        value.writeInteger(Int16(0))
        value.writeInteger(leaderId)
        for list in [voters, grantingVoters] {
            value.writeUnsignedVarint(UInt32(list.count + 1))
            for voter in list {
                value.writeInteger(voter)
                value.writeInteger(UInt8(0))
            }
        }
        value.writeInteger(UInt8(0))
        return value
    }
}
