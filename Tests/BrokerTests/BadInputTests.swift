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
