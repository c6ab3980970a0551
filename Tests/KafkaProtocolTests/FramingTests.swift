import KafkaProtocol
import NIOCore
import XCTest

final class FramingTests: XCTestCase {
    /// The frame decoder, fed one byte at a time, emits exactly the frames that were sent.
    func testFramesSurviveOneByteAtATime() throws {
        let frames = Samples.requestFrames.map(\.payload)
        var stream = ByteBufferAllocator().buffer(capacity: 1024)
        for frame in frames {
            stream.writeInteger(Int32(frame.readableBytes), endianness: .big)
            stream.writeImmutableBuffer(frame)
        }
        stream.writeBytes([0, 0, 0, 9, 1, 2])  // an incomplete trailing frame

        var accumulated = ByteBufferAllocator().buffer(capacity: 16)
        var emitted: [ByteBuffer] = []
        for byte in bytes(stream) {
            accumulated.writeInteger(byte)
            while let frame = try KafkaFrameDecoder.nextFrame(
                from: &accumulated, frameBytesMax: KafkaFrameDecoder.frameBytesMaxDefault)
            {
                emitted.append(frame)
            }
        }
        XCTAssertEqual(emitted, frames)
        XCTAssertEqual(accumulated.readableBytes, 6, "the partial frame stays buffered")
    }

    /// A negative size is refused as soon as its four bytes arrive.
    func testNegativeFrameSizeIsRefused() {
        var input = buffer([0xFF, 0xFF, 0xFF, 0xFE])
        XCTAssertThrowsError(try KafkaFrameDecoder.nextFrame(from: &input, frameBytesMax: 100)) {
            XCTAssertEqual($0 as? KafkaProtocolError, .negativeFrameSize(-2))
        }
    }

    /// A size above the maximum is refused before the payload is buffered.
    func testOversizeFrameIsRefused() {
        var input = buffer([0x00, 0x00, 0x04, 0x01])
        XCTAssertThrowsError(try KafkaFrameDecoder.nextFrame(from: &input, frameBytesMax: 1024)) {
            XCTAssertEqual($0 as? KafkaProtocolError, .frameTooLarge(size: 1025, max: 1024))
        }
        var atMax = buffer([0x00, 0x00, 0x04, 0x00])
        XCTAssertNil(try KafkaFrameDecoder.nextFrame(from: &atMax, frameBytesMax: 1024))
        XCTAssertEqual(KafkaFrameDecoder().frameBytesMax, 104_857_600)
    }

    /// A zero-size frame is a valid (empty) frame; the request decoder then refuses it.
    func testEmptyFrame() throws {
        var input = buffer([0, 0, 0, 0])
        let frame = try XCTUnwrap(try KafkaFrameDecoder.nextFrame(from: &input, frameBytesMax: 10))
        XCTAssertEqual(frame.readableBytes, 0)
        XCTAssertThrowsError(try KafkaRequestDecoder.decode(frame: frame))
    }

    /// Request headers: v1 for non-flexible versions, v2 (with tags, int16 client id) for flexible ones.
    func testRequestHeaderLayouts() throws {
        var v1 = KafkaWriter()
        RequestHeader(apiKey: .metadata, apiVersion: 4, correlationId: 7, clientId: "c").encode(into: &v1)
        XCTAssertEqual(bytes(v1.buffer), [0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07, 0x00, 0x01, 0x63])
        var v2 = KafkaWriter()
        RequestHeader(apiKey: .apiVersions, apiVersion: 3, correlationId: 1, clientId: nil).encode(into: &v2)
        XCTAssertEqual(bytes(v2.buffer), [0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0xFF, 0xFF, 0x00])
        var reader = KafkaReader(v2.buffer)
        XCTAssertEqual(
            try RequestHeader.decode(from: &reader),
            RequestHeader(apiKey: .apiVersions, apiVersion: 3, correlationId: 1, clientId: nil))
        XCTAssertEqual(reader.remaining, 0)
    }

    /// Response header v1 adds tags; ApiVersions always answers with v0.
    func testResponseHeaderVersions() {
        var v1 = KafkaWriter()
        ResponseHeader(correlationId: 2).encode(into: &v1, version: 1)
        XCTAssertEqual(bytes(v1.buffer), [0, 0, 0, 2, 0])
        XCTAssertEqual(ApiKey.apiVersions.responseHeaderVersion(3), 0)
        XCTAssertEqual(ApiKey.apiVersions.requestHeaderVersion(3), 2)
        XCTAssertEqual(ApiKey.fetch.responseHeaderVersion(12), 1)
        XCTAssertEqual(ApiKey.fetch.responseHeaderVersion(11), 0)
        XCTAssertEqual(ApiKey.produce.requestHeaderVersion(7), 1)
    }
}
