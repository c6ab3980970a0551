import CLZ4
import NIOCore

/// Why an LZ4 frame could not be written or read.
public enum LZ4FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The input does not start with the LZ4 frame magic 0x184D2204.
    case notAFrame(magic: UInt32)
    /// The frame's FLG says blocks depend on earlier ones; Kafka refuses such frames.
    case dependentBlocks
    /// The frame uses a dictionary id, which no Kafka client writes.
    case dictionaryNotSupported
    /// The input ended before the frame's end mark.
    case truncated
    /// liblz4 refused the frame (bad header checksum, corrupt block, checksum mismatch, …).
    case malformed(String)
    /// The frame decompresses to more than the caller allowed (a decompression bomb guard).
    case outputLimitExceeded(limit: Int)
    /// Bytes follow the frame's end mark.
    case trailingBytes(Int)
    /// liblz4 failed to compress (never expected with a destination of the bound's size).
    case compressionFailed(String)

    /// What went wrong, for logs.
    public var description: String {
        switch self {
        case .notAFrame(let magic): "not an LZ4 frame (magic 0x\(String(magic, radix: 16)))"
        case .dependentBlocks: "LZ4 frame with dependent blocks (Kafka requires independent blocks)"
        case .dictionaryNotSupported: "LZ4 frame with a dictionary id"
        case .truncated: "truncated LZ4 frame"
        case .malformed(let why): "malformed LZ4 frame: \(why)"
        case .outputLimitExceeded(let limit): "LZ4 frame decompresses to more than \(limit) bytes"
        case .trailingBytes(let count): "\(count) bytes after the LZ4 frame's end mark"
        case .compressionFailed(let why): "LZ4 compression failed: \(why)"
        }
    }
}

/// The LZ4 frame format as Kafka uses it for a batch's records section.
///
/// ```
/// magic      4  0x184D2204, little-endian
/// FLG        1  version 01 (bits 7-6), block independence (bit 5), block checksum (4),
///               content size (3), content checksum (2), reserved (1), dictionary id (0)
/// BD         1  max block size id (bits 6-4): 4 = 64 KiB, 5 = 256 KiB, 6 = 1 MiB, 7 = 4 MiB
/// [size]     8  content size, little-endian, when FLG bit 3
/// HC         1  (xxh32(FLG ... last descriptor byte, seed 0) >> 8) & 0xFF
/// blocks        uint32 LE size (high bit = stored uncompressed) + data [+ uint32 xxh32 when FLG bit 4]
/// end mark   4  uint32 0
/// [checksum] 4  xxh32 of the content, when FLG bit 2
/// ```
/// Keel writes what Kafka's clients write (librdkafka, Kafka's `Lz4BlockOutputStream`):
/// independent 64 KiB blocks, no checksums, no content size. It reads any frame with
/// independent blocks, optional content size, block and content checksums (liblz4
/// verifies the checksums), and refuses dependent blocks as Kafka does.
public enum LZ4Frame {
    /// The frame magic number.
    public static let magic: UInt32 = 0x184D_2204
    /// The fast compression level (liblz4's default, what librdkafka uses by default).
    public static let levelDefault: Int32 = 0
    /// Smallest possible frame: magic, FLG, BD, HC, end mark.
    public static let frameBytesMin = 11

    /// The largest frame that compressing `sourceBytes` bytes can produce.
    public static func compressBound(_ sourceBytes: Int) -> Int {
        var preferences = kafkaPreferences(level: levelDefault)
        return LZ4F_compressFrameBound(sourceBytes, &preferences)
    }

    static func kafkaPreferences(level: Int32) -> LZ4F_preferences_t {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max64KB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        preferences.frameInfo.contentChecksumFlag = LZ4F_noContentChecksum
        preferences.frameInfo.blockChecksumFlag = LZ4F_noBlockChecksum
        preferences.frameInfo.frameType = LZ4F_frame
        preferences.frameInfo.contentSize = 0
        preferences.compressionLevel = level
        return preferences
    }

    /// Compresses the readable bytes of `source` into one frame appended at the writer
    /// index of `destination`, with no intermediate copy. Returns the frame's size.
    @discardableResult
    public static func compress(
        _ source: ByteBuffer,
        level: Int32 = levelDefault,
        into destination: inout ByteBuffer
    ) throws(LZ4FrameError) -> Int {
        let result: Result<Int, LZ4FrameError> = source.withUnsafeReadableBytes { raw in
            do throws(LZ4FrameError) {
                return .success(try compress(raw, level: level, into: &destination))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Compresses `source` into one frame appended at the writer index of `destination`.
    /// Returns the frame's size.
    @discardableResult
    public static func compress(
        _ source: UnsafeRawBufferPointer,
        level: Int32 = levelDefault,
        into destination: inout ByteBuffer
    ) throws(LZ4FrameError) -> Int {
        var preferences = kafkaPreferences(level: level)
        let bound = LZ4F_compressFrameBound(source.count, &preferences)
        var failure: LZ4FrameError?
        let written = destination.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
            let size = LZ4F_compressFrame(out.baseAddress, out.count, source.baseAddress, source.count, &preferences)
            if LZ4F_isError(size) != 0 {
                failure = .compressionFailed(errorName(size))
                return 0
            }
            return size
        }
        if let failure { throw failure }
        return written
    }

    /// Decompresses the frame in the readable bytes of `source` into a new buffer.
    ///
    /// Fails with `.outputLimitExceeded` as soon as the content would pass
    /// `outputBytesMax`, before allocating more than that.
    public static func decompress(
        _ source: ByteBuffer,
        outputBytesMax: Int,
        allocator: ByteBufferAllocator = ByteBufferAllocator()
    ) throws(LZ4FrameError) -> ByteBuffer {
        var output = allocator.buffer(capacity: 0)
        try decompress(source, outputBytesMax: outputBytesMax, into: &output)
        return output
    }

    /// Decompresses the frame in the readable bytes of `source`, appending the content at
    /// the writer index of `destination`. Returns the content's size.
    @discardableResult
    public static func decompress(
        _ source: ByteBuffer,
        outputBytesMax: Int,
        into destination: inout ByteBuffer
    ) throws(LZ4FrameError) -> Int {
        let result: Result<Int, LZ4FrameError> = source.withUnsafeReadableBytes { raw in
            do throws(LZ4FrameError) {
                return .success(try decompress(raw, outputBytesMax: outputBytesMax, into: &destination))
            } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }

    /// Decompresses the frame in `source`, appending the content at the writer index of
    /// `destination`. The frame must fill `source` exactly. Returns the content's size.
    @discardableResult
    public static func decompress(
        _ source: UnsafeRawBufferPointer,
        outputBytesMax: Int,
        into destination: inout ByteBuffer
    ) throws(LZ4FrameError) -> Int {
        precondition(outputBytesMax >= 0, "outputBytesMax must not be negative")
        let contentSize = try checkDescriptor(source)
        if let contentSize, contentSize > UInt64(outputBytesMax) {
            throw .outputLimitExceeded(limit: outputBytesMax)
        }
        guard let sourceStart = source.baseAddress else { throw .truncated }

        var context: OpaquePointer?
        let created = LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))
        guard LZ4F_isError(created) == 0, let context else {
            throw .malformed("cannot create a decompression context: \(errorName(created))")
        }
        defer { LZ4F_freeDecompressionContext(context) }

        // Grow the output geometrically, never past the limit: a frame that claims little and
        // expands a lot stops at `outputBytesMax`, not at the machine's memory.
        var step = contentSize.map { Int($0) } ?? min(outputBytesMax, max(64 * 1024, source.count * 4))
        var consumedTotal = 0
        var producedTotal = 0
        while true {
            let room = outputBytesMax - producedTotal
            var failure: LZ4FrameError?
            var consumed = 0
            var hint = 0
            let produced = destination.writeWithUnsafeMutableBytes(minimumWritableBytes: max(1, min(room, step))) {
                out in
                var outSize = min(out.count, room)
                var inSize = source.count - consumedTotal
                let result = LZ4F_decompress(
                    context, out.baseAddress, &outSize, sourceStart + consumedTotal, &inSize, nil
                )
                if LZ4F_isError(result) != 0 {
                    failure = .malformed(errorName(result))
                    return 0
                }
                consumed = inSize
                hint = result
                return outSize
            }
            if let failure { throw failure }
            consumedTotal += consumed
            producedTotal += produced
            if hint == 0 { break }  // the end mark (and content checksum) have been read
            if consumed == 0 && produced == 0 {
                if producedTotal >= outputBytesMax { throw .outputLimitExceeded(limit: outputBytesMax) }
                if consumedTotal >= source.count { throw .truncated }
                throw .malformed("no progress at byte \(consumedTotal)")
            }
            step = max(step, producedTotal)
        }
        if consumedTotal < source.count { throw .trailingBytes(source.count - consumedTotal) }
        return producedTotal
    }

    /// Checks the magic and FLG byte as Kafka's `Lz4BlockInputStream` does, before
    /// liblz4 reads the rest. Returns the declared content size, if any.
    static func checkDescriptor(_ source: UnsafeRawBufferPointer) throws(LZ4FrameError) -> UInt64? {
        guard source.count >= 4 else { throw .truncated }
        let magic = source.loadUnaligned(fromByteOffset: 0, as: UInt32.self).littleEndian
        guard magic == Self.magic else { throw .notAFrame(magic: magic) }
        guard source.count >= 6 else { throw .truncated }
        let flags = source[4]
        guard flags >> 6 == 0b01 else { throw .malformed("frame version \(flags >> 6)") }
        guard flags & 0x20 != 0 else { throw .dependentBlocks }
        guard flags & 0x01 == 0 else { throw .dictionaryNotSupported }
        guard flags & 0x08 != 0 else { return nil }
        guard source.count >= 14 else { throw .truncated }
        return source.loadUnaligned(fromByteOffset: 6, as: UInt64.self).littleEndian
    }

    static func errorName(_ code: Int) -> String {
        guard let name = LZ4F_getErrorName(code) else { return "error \(code)" }
        return String(cString: name)
    }
}
