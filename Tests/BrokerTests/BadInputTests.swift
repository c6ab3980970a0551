import Foundation
import KafkaProtocol
import NIOCore
import XCTest

/// Bad bytes close only the connection that sent them, with one log line each, while
/// another client keeps producing and consuming successfully.
final class BadInputTests: XCTestCase {
    func testBadFramesCloseOnlyTheirConnection() throws {
        let directory = try makeTemporaryDirectory("bad-input")
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: directory + ".log")
        }
        let broker = try BrokerProcess(dataDirectory: directory)
        let steady = try ChildProcess(
            "python3",
            [interopDirectory.appendingPathComponent("steady_producer.py").path, broker.bootstrap, "steady", "2000"],
            outputPath: directory + ".steady")
        defer { try? FileManager.default.removeItem(atPath: directory + ".steady") }

        func header(apiKey: Int16, version: Int16, correlationId: Int32 = 1) -> [UInt8] {
            var buffer = ByteBuffer()
            buffer.writeInteger(apiKey)
            buffer.writeInteger(version)
            buffer.writeInteger(correlationId)
            buffer.writeInteger(Int16(4))
            buffer.writeString("test")
            return Array(buffer.readableBytesView)
        }
        func frame(_ payload: [UInt8]) -> [UInt8] {
            withUnsafeBytes(of: Int32(payload.count).bigEndian, Array.init) + payload
        }
        var generator = SeededGenerator(seed: 0x6b65_656c)
        let cases: [(String, [UInt8])] = [
            ("HTTP garbage", Array("GET / HTTP/1.1\r\nHost: keel\r\n\r\n".utf8)),
            ("oversize frame", withUnsafeBytes(of: Int32(100 * 1024 * 1024 + 1).bigEndian, Array.init)),
            ("negative size", withUnsafeBytes(of: Int32(-5).bigEndian, Array.init) + [1, 2, 3]),
            ("unknown API key", frame(header(apiKey: 999, version: 0))),
            ("truncated Metadata body", frame(header(apiKey: 3, version: 4) + [0, 0, 0, 5, 0])),
            ("unsupported Fetch version", frame(header(apiKey: 1, version: 3) + [UInt8](repeating: 0, count: 40))),
            ("seeded random frame", frame((0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) })),
        ]
        for (name, bytes) in cases {
            let connection = try RawConnection(port: broker.port)
            try connection.send(bytes)
            XCTAssertTrue(try connection.isClosedByPeer(), "\(name): the connection stayed open")
        }

        // An unknown ApiVersions version is answered (v0 body, error 35) and the connection stays usable.
        let connection = try RawConnection(port: broker.port)
        try connection.send(frame(header(apiKey: 18, version: 9, correlationId: 42)))
        let answer = try XCTUnwrap(try connection.readFrame())
        let (responseHeader, body) = try KafkaResponseDecoder.decode(
            ApiVersionsResponse.self, frame: answer, version: 0)
        XCTAssertEqual(responseHeader.correlationId, 42)
        XCTAssertEqual(body.errorCode, .unsupportedVersion)
        XCTAssertTrue(body.apiKeys.contains { $0.apiKey == 18 && $0.maxVersion == 3 })
        let versions = try connection.roundTrip(ApiVersionsRequest(), version: 0)
        XCTAssertEqual(versions.errorCode, .none)

        let result = try steady.wait(seconds: 90)
        XCTAssertEqual(result.status, 0, "the steady client was harmed:\n\(result.output)")
        let closings = broker.log.split(separator: "\n").filter { $0.contains("closing connection") }
        XCTAssertEqual(
            closings.count, cases.count, "one log line per bad connection:\n\(closings.joined(separator: "\n"))")
        XCTAssertEqual(try broker.stop(), 0, broker.log)
    }
}

/// A seeded fuzz run against a live broker: valid request frames with flipped bytes, cut
/// bodies and random tails. Whatever each does (answered, refused, closed), the broker
/// stays up and keeps answering. A failure names the seed and the case.
final class LiveFuzzTests: XCTestCase {
    func testSeededMutatedFramesNeverHurtTheBroker() throws {
        let directory = try makeTemporaryDirectory("fuzz")
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: directory + ".log")
        }
        let broker = try BrokerProcess(dataDirectory: directory)
        let fetchPartition = FetchRequest.Topic.Partition(
            partition: 0, currentLeaderEpoch: -1, fetchOffset: 0, logStartOffset: -1, partitionMaxBytes: 4096)
        let templates: [ByteBuffer] = [
            KafkaRequestEncoder.encodeFrame(
                ApiVersionsRequest(clientSoftwareName: "fuzz", clientSoftwareVersion: "1"), version: 3,
                correlationId: 1, clientId: "fuzz"),
            KafkaRequestEncoder.encodeFrame(
                MetadataRequest(topics: [.init(name: "fz")], allowAutoTopicCreation: true), version: 4,
                correlationId: 2, clientId: "fuzz"),
            KafkaRequestEncoder.encodeFrame(
                produceRequest("fz", records: try makeBatch(count: 3), acks: 1), version: 7, correlationId: 3,
                clientId: "fuzz"),
            KafkaRequestEncoder.encodeFrame(
                FetchRequest(
                    replicaId: -1, maxWaitMs: 10, minBytes: 1, maxBytes: 4096, isolationLevel: 0, sessionId: 0,
                    sessionEpoch: -1, topics: [.init(topic: "fz", partitions: [fetchPartition])],
                    forgottenTopicsData: [], rackId: ""),
                version: 11, correlationId: 4, clientId: "fuzz"),
            KafkaRequestEncoder.encodeFrame(
                ListOffsetsRequest(
                    replicaId: -1, isolationLevel: 0,
                    topics: [.init(name: "fz", partitions: [.init(partitionIndex: 0, timestamp: -2)])]),
                version: 2, correlationId: 5, clientId: "fuzz"),
            KafkaRequestEncoder.encodeFrame(
                DescribeConfigsRequest(
                    resources: [.init(resourceType: 2, resourceName: "fz", configurationKeys: nil)],
                    includeSynonyms: false),
                version: 1, correlationId: 6, clientId: "fuzz"),
            KafkaRequestEncoder.encodeFrame(
                InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 1), version: 0, correlationId: 7,
                clientId: "fuzz"),
        ]
        let setup = try RawConnection(port: broker.port)
        let created = try setup.roundTrip(
            MetadataRequest(topics: [.init(name: "fz")], allowAutoTopicCreation: true), version: 4)
        XCTAssertEqual(created.topics.first?.partitions.count, 1, "the fuzzed requests reach a real partition")
        let seed: UInt64 = 0x5EED_0001
        var generator = SeededGenerator(seed: seed)
        for round in 0..<600 {
            var bytes = Array(templates[Int.random(in: 0..<templates.count, using: &generator)].readableBytesView)
            switch Int.random(in: 0..<3, using: &generator) {
            case 0:  // flip bytes after the size prefix
                for _ in 0..<Int.random(in: 1...4, using: &generator) {
                    bytes[Int.random(in: 4..<bytes.count, using: &generator)] = UInt8.random(
                        in: 0...255, using: &generator)
                }
            case 1:  // cut the body and fix the size
                let keep = Int.random(in: 0..<(bytes.count - 4), using: &generator)
                bytes = withUnsafeBytes(of: Int32(keep).bigEndian, Array.init) + bytes[4..<(4 + keep)]
            default:  // random tail inside the frame
                let tail = (0..<Int.random(in: 1...32, using: &generator)).map { _ in
                    UInt8.random(in: 0...255, using: &generator)
                }
                let size = bytes.count - 4 + tail.count
                bytes = withUnsafeBytes(of: Int32(size).bigEndian, Array.init) + bytes[4...] + tail
            }
            let connection = try RawConnection(port: broker.port, timeoutSeconds: 2)
            try connection.send(bytes)
            // Answered, closed or silent: any is fine; the broker must not fall over.
            _ = try? connection.readFrame()
            XCTAssertTrue(broker.process.isRunning, "seed \(seed) round \(round) killed the broker:\n\(broker.log)")
        }
        let check = try RawConnection(port: broker.port)
        XCTAssertEqual(try check.roundTrip(ApiVersionsRequest(), version: 0).errorCode, .none)
        XCTAssertEqual(try broker.stop(), 0, broker.log)
    }
}

/// A small seeded generator (SplitMix64), so that the random frame is the same on every run.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
