import Foundation
import XCTest

/// Durability across a crash: SIGKILL the broker while an idempotent acks=all producer
/// writes, restart it on the same port and data, and find every acknowledged message
/// exactly once, in order.
final class RestartTests: XCTestCase {
    func testAcknowledgedMessagesSurviveSIGKILLExactlyOnceInOrder() throws {
        let directory = try makeTemporaryDirectory("restart")
        defer {
            try? FileManager.default.removeItem(atPath: directory)
            try? FileManager.default.removeItem(atPath: directory + ".log")
        }
        let first = try BrokerProcess(dataDirectory: directory)
        let port = first.port
        let ackPath = directory + ".acks"
        defer { try? FileManager.default.removeItem(atPath: ackPath) }
        let count = 12_000
        let producer = try ChildProcess(
            "python3",
            [
                interopDirectory.appendingPathComponent("restart_producer.py").path, first.bootstrap, "restart",
                String(count), ackPath,
            ],
            outputPath: directory + ".producer")
        func acknowledged() -> [Int] {
            ((try? String(contentsOfFile: ackPath, encoding: .utf8)) ?? "").split(separator: "\n").compactMap {
                Int($0)
            }
        }
        try waitUntil("1500 acknowledgements before the kill", seconds: 60) { acknowledged().count >= 1500 }
        XCTAssertEqual(try first.stop(signal: SIGKILL), SIGKILL)
        let ackedBeforeKill = acknowledged().count
        XCTAssertLessThan(ackedBeforeKill, count, "the producer finished before the kill; the test proves nothing")

        let second = try BrokerProcess(dataDirectory: directory, port: port)
        let result = try producer.wait(seconds: 120)
        XCTAssertEqual(result.status, 0, "producer failed:\n\(result.output)\n--- broker ---\n\(second.log)")

        let consumed = try runCommand(
            "kcat", ["-b", second.bootstrap, "-C", "-t", "restart", "-o", "beginning", "-e", "-q", "-f", "%s\n"])
        XCTAssertEqual(consumed.status, 0, consumed.output)
        let values = consumed.output.split(separator: "\n").compactMap { Int($0) }
        XCTAssertEqual(Set(values).count, values.count, "duplicates in the log")
        XCTAssertEqual(values, values.sorted(), "the log is out of order")
        let missing = Set(acknowledged()).subtracting(values)
        XCTAssertTrue(missing.isEmpty, "acknowledged but lost: \(missing.sorted().prefix(10))")
        XCTAssertEqual(values, Array(0..<count), "every message is there exactly once")
        XCTAssertEqual(try second.stop(), 0, second.log)
    }
}
