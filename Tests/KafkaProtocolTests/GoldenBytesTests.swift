import KafkaProtocol
import NIOCore
import XCTest

/// Byte layouts checked by hand against PROTOCOL.md §1, §3 and §4.
final class GoldenBytesTests: XCTestCase {
    /// PROTOCOL.md §3 "Advertise" column, written out independently of `ApiVersionsTable`, plus DeleteGroups v0–1
    /// (`keel group delete`; non-flexible below v2).
    private let advertised: [(Int16, Int16, Int16)] = [
        (0, 0, 7), (1, 4, 11), (2, 1, 2), (3, 0, 4), (8, 2, 3), (9, 1, 3), (10, 0, 1), (11, 0, 5), (12, 0, 1),
        (13, 0, 1), (14, 0, 3), (15, 0, 3), (16, 0, 2), (18, 0, 3), (19, 0, 3), (20, 0, 1), (22, 0, 1), (32, 0, 1),
        (42, 0, 1),
    ]

    private func int16(_ value: Int16) -> [UInt8] {
        [UInt8(truncatingIfNeeded: value >> 8), UInt8(truncatingIfNeeded: value)]
    }

    /// ApiVersions v0 response: size, response header v0 (correlation id only), error_code,
    /// int32-counted array of (key, min, max), no throttle time.
    func testApiVersionsV0ResponseBytes() {
        let frame = KafkaResponseEncoder.encodeFrame(ApiVersionsResponse.keel, version: 0, correlationId: 7)
        var expected: [UInt8] = [0x00, 0x00, 0x00, 0x7C]  // size 124 = 4 + 2 + 4 + 19 × 6
        expected += [0x00, 0x00, 0x00, 0x07]  // correlation_id (header v0: nothing else)
        expected += [0x00, 0x00]  // error_code NONE
        expected += [0x00, 0x00, 0x00, 0x13]  // 19 api_keys
        for (key, min, max) in advertised { expected += int16(key) + int16(min) + int16(max) }
        XCTAssertEqual(bytes(frame), expected)
        XCTAssertEqual(Array(bytes(frame)[14..<20]), [0x00, 0x00, 0x00, 0x00, 0x00, 0x07], "Produce 0–7 first")
    }

    /// ApiVersions v3 response: still response header v0 (no tag byte after the correlation id),
    /// error_code, compact array (uvarint 19 + 1 = 0x14) of (key, min, max, empty tags),
    /// throttle_time_ms, empty top-level tags.
    func testApiVersionsV3ResponseBytes() {
        let frame = KafkaResponseEncoder.encodeFrame(ApiVersionsResponse.keel, version: 3, correlationId: 1)
        var expected: [UInt8] = [0x00, 0x00, 0x00, 0x91]  // size 145 = 4 + 2 + 1 + 19 × 7 + 4 + 1
        expected += [0x00, 0x00, 0x00, 0x01]  // correlation_id, header v0
        expected += [0x00, 0x00]  // error_code
        expected += [0x14]  // compact array: 19 + 1
        for (key, min, max) in advertised { expected += int16(key) + int16(min) + int16(max) + [0x00] }
        expected += [0x00, 0x00, 0x00, 0x00]  // throttle_time_ms
        expected += [0x00]  // no tagged fields
        XCTAssertEqual(bytes(frame), expected)
    }

    /// ApiVersions v3 request: header v2 (int16 client id, then a tag byte), compact strings.
    func testApiVersionsV3RequestBytes() {
        let frame = KafkaRequestEncoder.encodeFrame(
            ApiVersionsRequest(clientSoftwareName: "k", clientSoftwareVersion: "1"), version: 3,
            correlationId: 1, clientId: "c")
        XCTAssertEqual(
            bytes(frame),
            [
                0x00, 0x00, 0x00, 0x11,  // size 17
                0x00, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01,  // key 18, v3, correlation 1
                0x00, 0x01, 0x63, 0x00,  // client_id "c" (int16 length), header tags
                0x02, 0x6B, 0x02, 0x31, 0x00,  // "k", "1", body tags
            ])
    }

    /// Produce v7 response: topics first, throttle_time_ms last.
    func testProduceV7ResponseBytes() {
        let response = ProduceResponse(
            responses: [
                .init(
                    name: "t",
                    partitionResponses: [
                        .init(index: 2, errorCode: .none, baseOffset: 5, logAppendTimeMs: -1, logStartOffset: 0)
                    ])
            ],
            throttleTimeMs: 1)
        let frame = KafkaResponseEncoder.encodeFrame(response, version: 7, correlationId: 3)
        XCTAssertEqual(
            bytes(frame),
            [
                0x00, 0x00, 0x00, 0x31,  // size 49
                0x00, 0x00, 0x00, 0x03,  // correlation_id
                0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x74,  // 1 topic "t"
                0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,  // 1 partition, index 2, NONE
                0, 0, 0, 0, 0, 0, 0, 5,  // base_offset
                0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,  // log_append_time_ms -1
                0, 0, 0, 0, 0, 0, 0, 0,  // log_start_offset
                0x00, 0x00, 0x00, 0x01,  // throttle_time_ms, last
            ])
    }

    /// Metadata v4 request with null topics (all) and auto-creation off.
    func testMetadataV4RequestBytes() {
        let frame = KafkaRequestEncoder.encodeFrame(
            MetadataRequest(topics: nil, allowAutoTopicCreation: false), version: 4, correlationId: 2, clientId: nil)
        XCTAssertEqual(
            bytes(frame),
            [
                0x00, 0x00, 0x00, 0x0F,
                0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x00, 0x02, 0xFF, 0xFF,
                0xFF, 0xFF, 0xFF, 0xFF, 0x00,
            ])
    }
}
