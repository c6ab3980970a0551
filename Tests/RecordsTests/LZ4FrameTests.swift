import Foundation
import NIOCore
import Records
import XCTest

final class LZ4FrameTests: XCTestCase {
    private func compress(_ bytes: [UInt8], level: Int32 = LZ4Frame.levelDefault) throws -> ByteBuffer {
        var out = ByteBuffer()
        try LZ4Frame.compress(ByteBuffer(bytes: bytes), level: level, into: &out)
        return out
    }

    /// Frames round-trip at block-size boundaries, compressible or not, at fast and high levels.
    func testFramesRoundTripAcrossBlockBoundaries() throws {
        var rng = SplitMix64(seed: 11)
        for size in [0, 1, 100, 65_535, 65_536, 65_537, 200_000, 1 << 20] {
            let noisy = randomBytes(size, using: &rng)
            let text = (0..<size).map { UInt8(ascii: "a") &+ UInt8($0 % 7) }
            for (input, level) in [(noisy, Int32(0)), (text, 0), (text, 9)] {
                let frame = try compress(input, level: level)
                XCTAssertLessThanOrEqual(frame.readableBytes, LZ4Frame.compressBound(size))
                let output = try LZ4Frame.decompress(frame, outputBytesMax: size)
                XCTAssertEqual(Array(output.readableBytesView), input, "size \(size) level \(level)")
            }
        }
    }

    /// Our frames carry Kafka's descriptor: version 1, independent blocks, no checksums or size, 64 KiB blocks.
    func testFrameDescriptorIsWhatKafkaClientsWrite() throws {
        let frame = try compress(Array(repeating: 1, count: 300_000))
        XCTAssertEqual(frame.getInteger(at: 0, endianness: .little, as: UInt32.self), 0x184D_2204)
        XCTAssertEqual(frame.getInteger(at: 4, as: UInt8.self), 0x60)  // FLG: version 01, B.Indep
        XCTAssertEqual(frame.getInteger(at: 5, as: UInt8.self), 0x40)  // BD: 64 KiB
        XCTAssertEqual(frame.getInteger(at: frame.writerIndex - 4, as: UInt32.self), 0)  // end mark, no checksum
    }

    /// Compression appends at the writer index and leaves earlier bytes alone.
    func testCompressAppendsToTheDestination() throws {
        var out = ByteBuffer(bytes: [9, 9, 9])
        let written = try LZ4Frame.compress(ByteBuffer(string: "hello hello hello"), into: &out)
        XCTAssertEqual(out.readableBytes, 3 + written)
        XCTAssertEqual(Array(out.readableBytesView.prefix(3)), [9, 9, 9])
        out.moveReaderIndex(forwardBy: 3)
        XCTAssertEqual(String(buffer: try LZ4Frame.decompress(out, outputBytesMax: 100)), "hello hello hello")
    }

    /// Decompression stops at the output limit (a bomb guard), whether or not the frame declares its size.
    func testDecompressionBombIsStoppedAtTheLimit() throws {
        let frame = try compress(Array(repeating: 0, count: 10 << 20))
        XCTAssertLessThan(frame.readableBytes, 64 * 1024)
        for limit in [0, 1, 65_536, (10 << 20) - 1] {
            XCTAssertThrowsError(try LZ4Frame.decompress(frame, outputBytesMax: limit)) {
                XCTAssertEqual($0 as? LZ4FrameError, .outputLimitExceeded(limit: limit))
            }
        }
        XCTAssertEqual(try LZ4Frame.decompress(frame, outputBytesMax: 10 << 20).readableBytes, 10 << 20)

        // python-lz4 stores the content size: a frame that declares too much is refused before decoding.
        var pythonBatch = try fixtureBytes("python/mixed-lz4-python-default.bin")
        pythonBatch.moveReaderIndex(forwardBy: RecordBatchHeader.size)
        XCTAssertThrowsError(try LZ4Frame.decompress(pythonBatch, outputBytesMax: 10)) {
            XCTAssertEqual($0 as? LZ4FrameError, .outputLimitExceeded(limit: 10))
        }
    }

    /// Dependent (linked) blocks are refused, as Kafka's reader refuses them.
    func testDependentBlocksAreRefused() throws {
        var batch = try fixtureBytes("python/many-lz4-linked.bin")
        batch.moveReaderIndex(forwardBy: RecordBatchHeader.size)
        XCTAssertThrowsError(try LZ4Frame.decompress(batch, outputBytesMax: 1 << 20)) {
            XCTAssertEqual($0 as? LZ4FrameError, .dependentBlocks)
        }
    }

    /// Truncated frames, trailing bytes, a wrong magic and a dictionary id are refused with typed errors.
    func testMalformedFramesAreRefused() throws {
        let input = (0..<100_000).map { UInt8(truncatingIfNeeded: $0 &* 31 >> 3) }
        let frame = try compress(input)
        for length in 0..<frame.readableBytes {
            let prefix = frame.getSlice(at: 0, length: length) ?? ByteBuffer()
            XCTAssertThrowsError(try LZ4Frame.decompress(prefix, outputBytesMax: 1 << 20), "length \(length)")
        }
        var trailing = frame
        trailing.writeInteger(UInt8(0))
        XCTAssertThrowsError(try LZ4Frame.decompress(trailing, outputBytesMax: 1 << 20)) {
            XCTAssertEqual($0 as? LZ4FrameError, .trailingBytes(1))
        }
        var wrongMagic = frame
        wrongMagic.setInteger(UInt8(0x05), at: 0)
        XCTAssertThrowsError(try LZ4Frame.decompress(wrongMagic, outputBytesMax: 1 << 20)) {
            guard case .notAFrame = $0 as? LZ4FrameError else { return XCTFail("\($0)") }
        }
        var dictionary = frame
        dictionary.setInteger(UInt8(0x61), at: 4)
        XCTAssertThrowsError(try LZ4Frame.decompress(dictionary, outputBytesMax: 1 << 20)) {
            XCTAssertEqual($0 as? LZ4FrameError, .dictionaryNotSupported)
        }
        var badHeaderChecksum = frame
        badHeaderChecksum.setInteger((frame.getInteger(at: 6, as: UInt8.self) ?? 0) ^ 1, at: 6)
        XCTAssertThrowsError(try LZ4Frame.decompress(badHeaderChecksum, outputBytesMax: 1 << 20)) {
            guard case .malformed = $0 as? LZ4FrameError else { return XCTFail("\($0)") }
        }
    }

    /// Block and content checksums that python-lz4 wrote are verified: a flipped byte under either is refused.
    func testBlockAndContentChecksumsAreVerified() throws {
        var batch = try fixtureBytes("python/many-lz4-checksums.bin")
        batch.moveReaderIndex(forwardBy: RecordBatchHeader.size)
        // FLG: independent blocks, block checksums, content checksum.
        XCTAssertEqual(batch.getInteger(at: batch.readerIndex + 4, as: UInt8.self), 0x74)
        XCTAssertNoThrow(try LZ4Frame.decompress(batch, outputBytesMax: 1 << 20))
        // Byte 11 of the frame lies inside the first block's data; the last byte is the content checksum.
        for offset in [11, batch.readableBytes - 1] {
            var corrupt = batch
            let index = batch.readerIndex + offset
            corrupt.setInteger((batch.getInteger(at: index, as: UInt8.self) ?? 0) ^ 0x10, at: index)
            XCTAssertThrowsError(try LZ4Frame.decompress(corrupt, outputBytesMax: 1 << 20), "offset \(offset)") {
                guard case .malformed = $0 as? LZ4FrameError else { return XCTFail("\($0)") }
            }
        }
    }

    /// python-lz4 decompresses our frames to the same bytes (skipped when python3 with lz4 is absent).
    func testPythonLZ4DecompressesOurFrames() throws {
        var rng = SplitMix64(seed: 3)
        var input = randomBytes(70_000, using: &rng)
        input += (0..<200_000).map { UInt8(ascii: "a") &+ UInt8($0 % 13) }
        let frame = try compress(input)
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("keel-lz4-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let framePath = directory.appendingPathComponent("frame.lz4")
        let plainPath = directory.appendingPathComponent("plain.bin")
        try Data(frame.readableBytesView).write(to: framePath)
        try Data(input).write(to: plainPath)

        let script = """
            import sys
            try:
                import lz4.frame
            except ImportError:
                sys.exit(77)
            frame = open(sys.argv[1], 'rb').read()
            sys.exit(0 if lz4.frame.decompress(frame) == open(sys.argv[2], 'rb').read() else 1)
            """
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", script, framePath.path, plainPath.path]
        do {
            try process.run()
        } catch {
            throw XCTSkip("python3 is not available: \(error)")
        }
        process.waitUntilExit()
        if process.terminationStatus == 77 || process.terminationStatus == 127 {
            throw XCTSkip("python3 with the lz4 package is not available")
        }
        XCTAssertEqual(process.terminationStatus, 0, "python-lz4 did not decompress our frame to the input")
    }
}
