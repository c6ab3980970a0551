import NIOCore

/// The `records` of one partition in a Fetch response.
///
/// The broker sends segment bytes without copying them through user space, so a response
/// may name records it does not hold: `.deferred(length:token:)` stands for `length` bytes
/// the server splices in (e.g. a file region) where `FetchResponse.encodeFrameParts` puts a
/// `.records` part. `token` is the caller's own handle for finding those bytes again.
public enum FetchRecords: Sendable, Equatable {
    /// Null records (int32 length -1).
    case null
    /// Records held in memory.
    case bytes(ByteBuffer)
    /// `length` bytes of records the server will supply when writing the frame.
    case deferred(length: Int, token: Int)

    /// `.bytes` for a buffer, `.null` for nil.
    public init(_ buffer: ByteBuffer?) {
        if let buffer { self = .bytes(buffer) } else { self = .null }
    }

    /// The number of record bytes (0 for null).
    public var byteCount: Int {
        switch self {
        case .null: 0
        case .bytes(let buffer): buffer.readableBytes
        case .deferred(let length, _): length
        }
    }

    /// Writes the records with their int32 length; `.deferred` cannot be written in one buffer.
    func write(to writer: inout KafkaWriter) {
        switch self {
        case .null:
            writer.writeInt32(-1)
        case .bytes(let buffer):
            writer.writeRecords(buffer)
        case .deferred:
            preconditionFailure("deferred records need FetchResponse.encodeFrameParts")
        }
    }
}

/// One piece of a Fetch response frame written by `FetchResponse.encodeFrameParts`.
public enum FetchResponsePart: Sendable, Equatable {
    /// Bytes to send as they are.
    case bytes(ByteBuffer)
    /// Send exactly `length` record bytes for the partition whose records were `.deferred(length, token)`.
    case records(length: Int, token: Int)
}

extension FetchResponse {
    /// Encodes the whole frame (size, response header v0, body) as byte parts interleaved with
    /// placeholders for `.deferred` records, in send order.
    ///
    /// The frame size counts the deferred bytes, so the server must send exactly `length` bytes
    /// for each `.records` part. All `.bytes` parts are slices of one buffer. In-memory `.bytes`
    /// records are copied into that buffer.
    public func encodeFrameParts(
        correlationId: Int32,
        version: Int16 = 11,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) -> [FetchResponsePart] {
        Self.checkEncodable(version)
        var writer = KafkaWriter(allocator: allocator, capacity: 256)
        let sizeAt = FrameWriting.begin(&writer)
        ResponseHeader(correlationId: correlationId).encode(
            into: &writer, version: Self.apiKey.responseHeaderVersion(version))
        var cuts: [(end: Int, length: Int, token: Int)] = []
        var deferredBytes = 0
        writer.writeInt32(throttleTimeMs)
        writer.writeInt16(errorCode.rawValue)
        writer.writeInt32(sessionId)
        writer.writeInt32(Int32(responses.count))
        for topic in responses {
            writer.writeString(topic.topic)
            writer.writeInt32(Int32(topic.partitions.count))
            for partition in topic.partitions {
                writer.writeInt32(partition.partitionIndex)
                writer.writeInt16(partition.errorCode.rawValue)
                writer.writeInt64(partition.highWatermark)
                writer.writeInt64(partition.lastStableOffset)
                writer.writeInt64(partition.logStartOffset)
                writer.writeNullableArray(partition.abortedTransactions)
                writer.writeInt32(partition.preferredReadReplica)
                if case .deferred(let length, let token) = partition.records {
                    precondition(length >= 0 && length <= Int(Int32.max), "invalid deferred records length")
                    writer.writeInt32(Int32(length))
                    cuts.append((writer.buffer.writerIndex, length, token))
                    deferredBytes += length
                } else {
                    partition.records.write(to: &writer)
                }
            }
        }
        FrameWriting.end(&writer, sizeAt: sizeAt, extraBytes: deferredBytes)

        var parts: [FetchResponsePart] = []
        parts.reserveCapacity(cuts.count * 2 + 1)
        var start = writer.buffer.readerIndex
        for cut in cuts {
            if cut.end > start { parts.append(.bytes(Self.slice(writer.buffer, from: start, to: cut.end))) }
            parts.append(.records(length: cut.length, token: cut.token))
            start = cut.end
        }
        if writer.buffer.writerIndex > start {
            parts.append(.bytes(Self.slice(writer.buffer, from: start, to: writer.buffer.writerIndex)))
        }
        return parts
    }

    private static func slice(_ buffer: ByteBuffer, from start: Int, to end: Int) -> ByteBuffer {
        guard let slice = buffer.getSlice(at: start, length: end - start) else {
            preconditionFailure("slice outside the written bytes")
        }
        return slice
    }
}
