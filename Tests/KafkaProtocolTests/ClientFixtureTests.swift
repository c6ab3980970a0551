import Foundation
import KafkaProtocol
import NIOCore
import Records
import XCTest

/// First requests of real clients, captured by tools/fixtures/capture_first_requests.py.
final class ClientFixtureTests: XCTestCase {
    /// Loads a fixture (a whole frame, size prefix included) and takes it apart one byte at a time.
    private func frame(_ name: String) throws -> ByteBuffer {
        let url = try XCTUnwrap(
            Bundle.module.url(forResource: name, withExtension: "bin", subdirectory: "Fixtures"), "missing \(name)")
        let data = try Data(contentsOf: url)
        var accumulated = ByteBufferAllocator().buffer(capacity: data.count)
        var frames: [ByteBuffer] = []
        for byte in data {
            accumulated.writeInteger(byte)
            if let frame = try KafkaFrameDecoder.nextFrame(from: &accumulated, frameBytesMax: 1 << 20) {
                frames.append(frame)
            }
        }
        XCTAssertEqual(frames.count, 1)
        XCTAssertEqual(accumulated.readableBytes, 0)
        return try XCTUnwrap(frames.first)
    }

    private func assertApiVersions(
        _ name: String, version: Int16, clientId: String, software: (String, String)?
    ) throws {
        let decoded = try KafkaRequestDecoder.decode(frame: frame(name))
        XCTAssertEqual(
            decoded.header,
            RequestHeader(apiKey: .apiVersions, apiVersion: version, correlationId: 1, clientId: clientId))
        XCTAssertEqual(
            decoded.request,
            .apiVersions(ApiVersionsRequest(clientSoftwareName: software?.0, clientSoftwareVersion: software?.1)))
    }

    /// kcat 1.7.1 (librdkafka 2.0.2) opens with ApiVersions v3, header v2.
    func testKcatApiVersionsV3() throws {
        try assertApiVersions("kcat-ApiVersions-v3", version: 3, clientId: "rdkafka", software: ("librdkafka", "2.0.2"))
    }

    /// confluent-kafka 2.16.1 (librdkafka 2.16.0) opens with ApiVersions v3.
    func testConfluentKafkaApiVersionsV3() throws {
        try assertApiVersions(
            "confluent-kafka-ApiVersions-v3", version: 3, clientId: "rdkafka",
            software: ("confluent-kafka-python", "2.16.1-rdkafka-2.16.0"))
    }

    /// aiokafka 0.14.0 opens with ApiVersions v0 (empty body).
    func testAiokafkaApiVersionsV0() throws {
        try assertApiVersions("aiokafka-ApiVersions-v0", version: 0, clientId: "aiokafka-0.14.0", software: nil)
    }

    /// kafka-python 3.0.12 opens with ApiVersions v4, which Keel answers with UNSUPPORTED_VERSION
    /// (v0 body) without parsing the body.
    func testKafkaPythonApiVersionsV4IsAnsweredUnsupported() throws {
        XCTAssertThrowsError(try KafkaRequestDecoder.decode(frame: frame("kafka-python-ApiVersions-v4"))) { error in
            XCTAssertEqual(
                error as? RequestDecodeFailure,
                .answerUnsupportedVersion(
                    RequestHeader(
                        apiKey: .apiVersions, apiVersion: 4, correlationId: 1, clientId: "kafka-python-producer-1")))
        }
    }

    /// kafka-python falls back from ApiVersions v4 to v3 after Keel's UNSUPPORTED_VERSION answer.
    func testKafkaPythonApiVersionsV3AfterFallback() throws {
        try assertApiVersions(
            "kafka-python-ApiVersions-v3", version: 3, clientId: "kafka-python-producer-1",
            software: ("kafka-python", "3.0.12"))
    }

    /// Every client asks Metadata v4 for the topic it produces to.
    func testMetadataV4FromEveryClient() throws {
        let clients = [
            ("kcat", "rdkafka"), ("confluent-kafka", "rdkafka"), ("kafka-python", "kafka-python-producer-1"),
            ("aiokafka", "aiokafka-producer-1"),
        ]
        for (client, clientId) in clients {
            let name = "\(client)-Metadata-v4"
            let decoded = try KafkaRequestDecoder.decode(frame: frame(name))
            XCTAssertEqual(decoded.header.apiKey, .metadata)
            XCTAssertEqual(decoded.header.apiVersion, 4)
            XCTAssertEqual(decoded.header.clientId, clientId, name)
            guard case .metadata(let request) = decoded.request else { return XCTFail("not metadata: \(name)") }
            XCTAssertEqual(request.topics, [.init(name: "capture")], name)
        }
    }

    /// kafka-python 3 is idempotent by default: it asks InitProducerId v1 for a producer id, with no
    /// transactional id.
    func testKafkaPythonInitProducerIdV1() throws {
        let decoded = try KafkaRequestDecoder.decode(frame: frame("kafka-python-InitProducerId-v1"))
        XCTAssertEqual(decoded.header.apiKey, .initProducerId)
        XCTAssertEqual(decoded.header.apiVersion, 1)
        guard case .initProducerId(let request) = decoded.request else { return XCTFail("not InitProducerId") }
        XCTAssertNil(request.transactionalId)
    }

    /// Every client sends Produce v7 with exactly one magic-2 batch whose CRC-32C checks out, so the
    /// records slice is exactly the batch; kafka-python's batch carries the producer id it was given.
    func testProduceV7FromEveryClient() throws {
        let clients: [(String, acks: Int16, producerId: Int64)] = [
            ("kcat", -1, -1), ("confluent-kafka", -1, -1), ("kafka-python", -1, 1000), ("aiokafka", 1, -1),
        ]
        for (client, acks, producerId) in clients {
            let name = "\(client)-Produce-v7"
            let decoded = try KafkaRequestDecoder.decode(frame: frame(name))
            XCTAssertEqual(decoded.header.apiKey, .produce)
            XCTAssertEqual(decoded.header.apiVersion, 7)
            guard case .produce(let request) = decoded.request else { return XCTFail("not produce: \(name)") }
            XCTAssertNil(request.transactionalId)
            XCTAssertEqual(request.acks, acks, name)
            XCTAssertEqual(request.topicData.map(\.name), ["capture"])
            XCTAssertEqual(request.topicData.first?.partitionData.count, 1)
            let partition = try XCTUnwrap(request.topicData.first?.partitionData.first)
            XCTAssertEqual(partition.index, 0)
            let records = try XCTUnwrap(partition.records)
            let header = try RecordBatchHeader.read(from: records, at: records.readerIndex)
            XCTAssertEqual(header.magic, 2)
            XCTAssertEqual(header.recordsCount, 1)
            XCTAssertEqual(header.producerId, producerId, name)
            XCTAssertEqual(header.totalSize, records.readableBytes)
            let crc = CRC32C.checksum(
                records, at: records.readerIndex + RecordBatchHeader.crcStart,
                length: records.readableBytes - RecordBatchHeader.crcStart)
            XCTAssertEqual(crc, header.crc, name)
        }
    }
}
