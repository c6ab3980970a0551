import Foundation
import XCTest

/// Real Kafka clients (kcat, confluent-kafka, kafka-python, aiokafka) against a real
/// `keel broker` process: every test checks content and order, not only counts.
final class InteropTests: XCTestCase {
    var directory = ""
    var broker: BrokerProcess?

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("interop")
        broker = try BrokerProcess(dataDirectory: directory)
    }

    override func tearDownWithError() throws {
        if let broker {
            XCTAssertEqual(try broker.stop(), 0, "broker did not shut down cleanly:\n\(broker.log)")
        }
        broker = nil
        try? FileManager.default.removeItem(atPath: directory)
        try? FileManager.default.removeItem(atPath: directory + ".log")
    }

    private func kcat(_ arguments: [String], stdin: String? = nil) throws -> String {
        let bootstrap = try XCTUnwrap(broker).bootstrap
        let result = try runCommand("kcat", ["-b", bootstrap] + arguments, stdin: stdin.map { Data($0.utf8) })
        XCTAssertEqual(result.status, 0, "kcat \(arguments) failed:\n\(result.output)")
        return result.output
    }

    private static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// kcat produces with and without LZ4, with keys, headers and null values, and reads back
    /// everything in order from the beginning and from a time.
    func testKcatProducesAndConsumesInOrder() throws {
        let plain = (0..<500).map { "plain-\($0)" }
        _ = try kcat(["-P", "-t", "kc", "-z", "lz4"], stdin: plain.joined(separator: "\n") + "\n")
        let keyed = (0..<300).map { $0 % 10 == 0 ? "key-\($0):" : "key-\($0):value-\($0)" }
        _ = try kcat(
            ["-P", "-t", "kc", "-K:", "-Z", "-H", "h1=a", "-H", "h2=b"], stdin: keyed.joined(separator: "\n") + "\n")
        // Everything so far has a timestamp below `cut`; everything after, at or above it.
        let cut = Self.nowMs() + 1
        try waitUntil("the clock to pass the cut", seconds: 5) { Self.nowMs() > cut }
        let late = (0..<200).map { "late-\($0)" }
        _ = try kcat(["-P", "-t", "kc"], stdin: late.joined(separator: "\n") + "\n")

        let format = ["-f", "%o|%k|%s|%h\n", "-Z"]
        let all = try kcat(["-C", "-t", "kc", "-o", "beginning", "-e", "-q"] + format)
        var expected = plain.enumerated().map { "\($0.offset)|NULL|\($0.element)|" }
        expected += (0..<300).map { i in
            "\(500 + i)|key-\(i)|\(i % 10 == 0 ? "NULL" : "value-\(i)")|h1=a,h2=b"
        }
        expected += late.enumerated().map { "\(800 + $0.offset)|NULL|\($0.element)|" }
        XCTAssertEqual(all.split(separator: "\n").map(String.init), expected)

        let fromTime = try kcat(["-C", "-t", "kc", "-o", "s@\(cut)", "-e", "-q", "-f", "%o %s\n"])
        XCTAssertEqual(
            fromTime.split(separator: "\n").map(String.init),
            late.enumerated().map { "\(800 + $0.offset) \($0.element)" })

        let tail = try kcat(["-C", "-t", "kc", "-o", "-3", "-e", "-q", "-f", "%s\n"])
        XCTAssertEqual(tail.split(separator: "\n").map(String.init), Array(late.suffix(3)))
        let listing = try kcat(["-L", "-t", "kc"])
        XCTAssertTrue(listing.contains("partition 0, leader 1, replicas: 1, isrs: 1"), listing)
    }

    /// confluent-kafka: admin, idempotent acks=all produce with every codec, 1 MiB values,
    /// assign + seek + offsets_for_times.
    func testConfluentKafka() throws {
        try runInteropScript("confluent_interop.py", [try XCTUnwrap(broker).bootstrap])
    }

    /// kafka-python 3 with its defaults (acks=all, idempotent) and a KafkaConsumer with assign().
    func testKafkaPython() throws {
        try runInteropScript("kafka_python_interop.py", [try XCTUnwrap(broker).bootstrap])
    }

    /// aiokafka producer (idempotent, lz4 and none) and consumer with assign().
    func testAiokafka() throws {
        try runInteropScript("aiokafka_interop.py", [try XCTUnwrap(broker).bootstrap])
    }
}
