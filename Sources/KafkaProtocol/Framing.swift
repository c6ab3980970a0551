import NIOCore

/// Splits a byte stream into Kafka frames: `int32 size` (big-endian, excluding itself) + size bytes.
///
/// Emits each frame's payload (header + body, without the size) as a `ByteBuffer` slice. A
/// negative size or one above `frameBytesMax` is refused as soon as the 4 size bytes arrive,
/// before any payload is buffered; the server then closes the connection.
public struct KafkaFrameDecoder: ByteToMessageDecoder, Sendable {
    /// The frame payload (header + body).
    public typealias InboundOut = ByteBuffer

    /// Kafka's `socket.request.max.bytes` default: 100 MiB.
    public static let frameBytesMaxDefault = 100 * 1024 * 1024

    /// The largest frame accepted, in bytes (excluding the size prefix).
    public let frameBytesMax: Int

    /// Creates a decoder refusing frames above `frameBytesMax` bytes.
    public init(frameBytesMax: Int = KafkaFrameDecoder.frameBytesMaxDefault) {
        precondition(frameBytesMax >= 0, "frameBytesMax must not be negative")
        self.frameBytesMax = frameBytesMax
    }

    /// Takes one whole frame off the front of `buffer`, or returns nil (consuming nothing) if
    /// it has not fully arrived. Throws on a negative or oversize size.
    public static func nextFrame(
        from buffer: inout ByteBuffer,
        frameBytesMax: Int
    ) throws(KafkaProtocolError) -> ByteBuffer? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else {
            return nil
        }
        if size < 0 { throw .negativeFrameSize(size) }
        if Int(size) > frameBytesMax { throw .frameTooLarge(size: Int(size), max: frameBytesMax) }
        guard buffer.readableBytes >= 4 + Int(size) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(size))
    }

    /// `ByteToMessageDecoder`: emits every complete frame.
    public mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let frame = try Self.nextFrame(from: &buffer, frameBytesMax: frameBytesMax) else {
            return .needMoreData
        }
        context.fireChannelRead(Self.wrapInboundOut(frame))
        return .continue
    }

    /// `ByteToMessageDecoder`: emits the complete frames left at end of input; a partial frame is dropped.
    public mutating func decodeLast(
        context: ChannelHandlerContext,
        buffer: inout ByteBuffer,
        seenEOF: Bool
    ) throws -> DecodingState {
        try decode(context: context, buffer: &buffer)
    }
}

/// Helpers to write a size-prefixed frame into one buffer.
enum FrameWriting {
    /// Reserves the `int32 size` slot; returns its index.
    static func begin(_ writer: inout KafkaWriter) -> Int {
        let index = writer.buffer.writerIndex
        writer.writeInt32(0)
        return index
    }

    /// Fills the size slot at `index` with the bytes written after it plus `extraBytes` not in the buffer.
    static func end(_ writer: inout KafkaWriter, sizeAt index: Int, extraBytes: Int = 0) {
        let size = writer.buffer.writerIndex - index - 4 + extraBytes
        precondition(size <= Int(Int32.max), "frame too large")
        writer.buffer.setInteger(Int32(size), at: index, endianness: .big)
    }
}
