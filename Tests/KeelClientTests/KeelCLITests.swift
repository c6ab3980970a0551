import Foundation
import XCTest

/// The `keel topic`, `keel produce` and `keel consume` commands, run as a user would, against
/// librdkafka's mock cluster.
final class KeelCLITests: XCTestCase {
    private var cluster: MockCluster!

    override func setUpWithError() throws {
        cluster = try MockCluster(brokers: 1)
    }

    override func tearDown() {
        cluster?.stop()
    }

    /// The `keel` binary beside the test executable (`swift build` puts both in one directory).
    private var keel: String {
        let candidates = [
            Bundle.main.executableURL?.deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            Bundle(for: Self.self).bundleURL.deletingLastPathComponent(),
        ]
        for directory in candidates.compactMap({ $0 }) {
            let path = directory.appendingPathComponent("keel").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return "keel-binary-not-found-beside-the-tests"
    }

    private func run(_ arguments: [String], input: String = "") throws -> ChildProcess.Output {
        try ChildProcess.run([keel] + arguments, input: input, timeoutSeconds: 60)
    }

    /// Lines produced with keys and headers come back from `keel consume --format json` in
    /// order, with partition, offset, timestamp, key, value and headers.
    func testProduceThenConsumeAsJSON() throws {
        let bootstrap = ["--bootstrap", cluster.bootstrap]
        let lines = (0..<25).map { "key\($0 % 5)|value \($0) \"quoted\"" }
        let produced = try run(
            ["produce", "cli", "--key-separator", "|", "--header", "source=test", "--partition", "0"] + bootstrap,
            input: lines.joined(separator: "\n") + "\n")
        XCTAssertEqual(produced.status, 0, produced.stderr)
        XCTAssertEqual(produced.stdout, "produced 25 records to cli\n")

        let consumed = try run(
            ["consume", "cli", "--partition", "0", "--format", "json", "--count", "25", "--from", "earliest"]
                + bootstrap)
        XCTAssertEqual(consumed.status, 0, consumed.stderr)
        let objects = try consumed.stdout.split(separator: "\n").map {
            try XCTUnwrap(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        XCTAssertEqual(objects.count, 25)
        for (index, object) in objects.enumerated() {
            XCTAssertEqual(object["partition"] as? Int, 0)
            XCTAssertEqual(object["offset"] as? Int, index)
            XCTAssertEqual(object["key"] as? String, "key\(index % 5)")
            XCTAssertEqual(object["value"] as? String, "value \(index) \"quoted\"")
            XCTAssertGreaterThan(object["timestamp"] as? Int ?? 0, 1_700_000_000_000)
            let headers = object["headers"] as? [[String: Any]]
            XCTAssertEqual(headers?.first?["key"] as? String, "source")
            XCTAssertEqual(headers?.first?["value"] as? String, "test")
        }

        let tail = try run(["consume", "cli", "--partition", "0", "--from", "23", "--timeout-ms", "500"] + bootstrap)
        XCTAssertEqual(tail.status, 0, tail.stderr)
        XCTAssertEqual(tail.stdout, "value 23 \"quoted\"\nvalue 24 \"quoted\"\n")
    }

    /// Each mistake gets exactly one line on stderr saying what to do, and a failing exit status.
    func testMistakesGetOneLine() throws {
        let cases: [([String], String, String)] = [
            (["consume", "t", "--bootstrap", "127.0.0.1:1"], "", "start one with `keel broker`"),
            (["produce", "t", "--acks", "2", "--bootstrap", cluster.bootstrap], "", "--acks '2' is not 0, 1 or all"),
            (["consume", "t", "--from", "soon", "--bootstrap", cluster.bootstrap], "", "write e.g. --from 2026-11-25"),
            (
                ["produce", "t", "--key-separator", ":", "--bootstrap", cluster.bootstrap], "no separator\n",
                "line 1 has no key separator"
            ),
            (["topic", "describe", "absent", "--bootstrap", cluster.bootstrap], "", "keel topic create absent"),
            (["produce", "t", "--bootstrap", "nonsense"], "", "is not host:port"),
            (["produce"], "", "Missing expected argument '<topic>'; see `keel produce --help`"),
            (["consume", "t", "--count", "many"], "", "see `keel consume --help`"),
        ]
        for (arguments, input, expected) in cases {
            let output = try run(arguments, input: input)
            XCTAssertNotEqual(output.status, 0, arguments.joined(separator: " "))
            let lines = output.stderr.split(separator: "\n")
            XCTAssertEqual(lines.count, 1, "\(arguments): \(output.stderr)")
            XCTAssertTrue(output.stderr.contains(expected), "\(arguments): \(output.stderr)")
        }
    }
}
