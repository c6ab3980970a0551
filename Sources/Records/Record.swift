import NIOCore

/// One header of a record: a UTF-8 key and a value that may be null.
public struct RecordHeader: Hashable, Sendable {
    /// The header name. Kafka forbids a null header key.
    public var key: String
    /// The header value; nil is Kafka's null.
    public var value: ByteBuffer?

    /// Creates a header.
    public init(key: String, value: ByteBuffer?) {
        self.key = key
        self.value = value
    }
}

/// One record inside a batch, as Kafka's `DefaultRecord` lays it out.
///
/// ```
/// length          varint   bytes after this field
/// attributes      int8     unused, 0
/// timestampDelta  varlong  timestamp - batch baseTimestamp
/// offsetDelta     varint   offset - batch baseOffset
/// keyLength       varint   -1 = null key
/// key             bytes
/// valueLength     varint   -1 = null value
/// value           bytes
/// headersCount    varint
/// headers         headersCount × (keyLength varint, key UTF-8, valueLength varint (-1 = null), value)
/// ```
/// All varints are zig-zag encoded. A decoded record's key, value and header values are
/// slices of the buffer it was read from: decoding copies no payload bytes.
public struct Record: Hashable, Sendable {
    /// The record attributes byte (unused by Kafka, written as 0).
    public var attributes: Int8
    /// Timestamp relative to the batch's `baseTimestamp`, in milliseconds.
    public var timestampDelta: Int64
    /// Offset relative to the batch's `baseOffset`.
    public var offsetDelta: Int32
    /// The key; nil is Kafka's null key.
    public var key: ByteBuffer?
    /// The value; nil is Kafka's null value (a tombstone in compacted topics).
    public var value: ByteBuffer?
    /// The headers, in order.
    public var headers: [RecordHeader]

    /// Creates a record.
    public init(
        attributes: Int8 = 0,
        timestampDelta: Int64,
        offsetDelta: Int32,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader] = []
    ) {
        self.attributes = attributes
        self.timestampDelta = timestampDelta
        self.offsetDelta = offsetDelta
        self.key = key
        self.value = value
        self.headers = headers
    }

    /// The largest fixed overhead of a record: length, attributes, deltas, key and value
    /// lengths, header count (Kafka's `DefaultRecord.MAX_RECORD_OVERHEAD`).
    public static let overheadBytesMax = 21

    /// Bytes of the record after its length varint.
    public var bodySize: Int {
        Self.bodySize(
            timestampDelta: timestampDelta, offsetDelta: offsetDelta, key: key, value: value, headers: headers
        )
    }

    /// Bytes of the whole encoded record, length varint included.
    public var encodedSize: Int {
        let body = bodySize
        return Varint.size(Int32(body)) + body
    }

    /// Appends the encoded record at the writer index of `buffer`. Returns the bytes written.
    @discardableResult
    public func write(to buffer: inout ByteBuffer) -> Int {
        Self.write(
            attributes: attributes, timestampDelta: timestampDelta, offsetDelta: offsetDelta,
            key: key, value: value, headers: headers, to: &buffer
        )
    }

    /// Size of a record body with these fields, without building a `Record`.
    static func bodySize(
        timestampDelta: Int64,
        offsetDelta: Int32,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader]
    ) -> Int {
        var size = 1 + Varint.size(timestampDelta) + Varint.size(offsetDelta)
        size += Self.lengthPrefixedSize(key)
        size += Self.lengthPrefixedSize(value)
        size += Varint.size(Int32(clamping: headers.count))
        for header in headers {
            let keyBytes = header.key.utf8.count
            size += Varint.size(Int32(clamping: keyBytes)) + keyBytes
            size += Self.lengthPrefixedSize(header.value)
        }
        return size
    }

    static func lengthPrefixedSize(_ bytes: ByteBuffer?) -> Int {
        guard let bytes else { return 1 }  // varint -1
        return Varint.size(Int32(clamping: bytes.readableBytes)) + bytes.readableBytes
    }

    /// Encodes a record from its fields straight into `buffer`, without building a `Record`.
    /// Returns the bytes written.
    @discardableResult
    static func write(
        attributes: Int8,
        timestampDelta: Int64,
        offsetDelta: Int32,
        key: ByteBuffer?,
        value: ByteBuffer?,
        headers: [RecordHeader],
        to buffer: inout ByteBuffer
    ) -> Int {
        let body = bodySize(
            timestampDelta: timestampDelta, offsetDelta: offsetDelta, key: key, value: value, headers: headers
        )
        // A record lives inside a batch whose length is an int32: larger is a caller bug.
        precondition(body <= Int(Int32.max) - 5, "record of \(body) bytes cannot be encoded")
        let start = buffer.writerIndex
        buffer.reserveCapacity(minimumWritableBytes: body + 5)
        buffer.writeVarint(Int32(body))
        buffer.writeInteger(attributes)
        buffer.writeVarlong(timestampDelta)
        buffer.writeVarint(offsetDelta)
        writeLengthPrefixed(key, to: &buffer)
        writeLengthPrefixed(value, to: &buffer)
        buffer.writeVarint(Int32(headers.count))
        for header in headers {
            buffer.writeVarint(Int32(header.key.utf8.count))
            buffer.writeString(header.key)
            writeLengthPrefixed(header.value, to: &buffer)
        }
        return buffer.writerIndex - start
    }

    static func writeLengthPrefixed(_ bytes: ByteBuffer?, to buffer: inout ByteBuffer) {
        guard let bytes else {
            buffer.writeVarint(-1)
            return
        }
        buffer.writeVarint(Int32(bytes.readableBytes))
        buffer.writeImmutableBuffer(bytes)
    }

    /// Reads one record at the reader index of `buffer` and moves the reader index past it.
    ///
    /// Every length is checked against the bytes that remain before anything is sliced or
    /// allocated, and the fields must fill the record's declared length exactly. On error
    /// the reader index is left somewhere inside the record.
    public static func read(from buffer: inout ByteBuffer) throws(RecordBatchError) -> Record {
        let length = try readVarint(&buffer, "record length")
        guard length >= 0, Int(length) <= buffer.readableBytes else {
            throw .malformedRecord("record length \(length) with \(buffer.readableBytes) bytes left")
        }
        guard var body = buffer.readSlice(length: Int(length)) else {
            throw .malformedRecord("record length \(length) with \(buffer.readableBytes) bytes left")
        }
        guard let attributes = body.readInteger(as: Int8.self) else {
            throw .malformedRecord("record ends before its attributes")
        }
        let timestampDelta: Int64
        do {
            timestampDelta = try body.readVarlong()
        } catch {
            throw .malformedRecord("timestamp delta: \(error)")
        }
        let offsetDelta = try readVarint(&body, "offset delta")
        let key = try readNullableBytes(&body, "key")
        let value = try readNullableBytes(&body, "value")
        let headerCount = try readVarint(&body, "header count")
        // Each header takes at least two bytes (two length varints): a count beyond that is a lie.
        guard headerCount >= 0, Int(headerCount) <= body.readableBytes / 2 else {
            throw .malformedRecord("header count \(headerCount) with \(body.readableBytes) bytes left")
        }
        var headers: [RecordHeader] = []
        headers.reserveCapacity(Int(headerCount))
        for _ in 0..<headerCount {
            let keyLength = try readVarint(&body, "header key length")
            guard keyLength >= 0, Int(keyLength) <= body.readableBytes else {
                throw .malformedRecord("header key length \(keyLength) with \(body.readableBytes) bytes left")
            }
            let headerKey = body.readString(length: Int(keyLength)) ?? ""
            let headerValue = try readNullableBytes(&body, "header value")
            headers.append(RecordHeader(key: headerKey, value: headerValue))
        }
        guard body.readableBytes == 0 else {
            throw .malformedRecord("\(body.readableBytes) bytes left after the record's fields (length \(length))")
        }
        return Record(
            attributes: attributes, timestampDelta: timestampDelta, offsetDelta: offsetDelta,
            key: key, value: value, headers: headers
        )
    }

    private static func readVarint(
        _ buffer: inout ByteBuffer,
        _ field: StaticString
    ) throws(RecordBatchError) -> Int32 {
        do {
            return try buffer.readVarint()
        } catch {
            throw .malformedRecord("\(field): \(error)")
        }
    }

    private static func readNullableBytes(
        _ buffer: inout ByteBuffer,
        _ field: StaticString
    ) throws(RecordBatchError) -> ByteBuffer? {
        let length: Int32
        do {
            length = try buffer.readVarint()
        } catch {
            throw .malformedRecord("\(field) length: \(error)")
        }
        if length == -1 { return nil }
        guard length >= 0, Int(length) <= buffer.readableBytes,
            let bytes = buffer.readSlice(length: Int(length))
        else {
            throw .malformedRecord("\(field) length \(length) with \(buffer.readableBytes) bytes left")
        }
        return bytes
    }
}
