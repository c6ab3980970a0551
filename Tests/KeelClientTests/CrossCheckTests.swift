import Foundation
import KeelClient
import NIOCore
import XCTest

final class CrossCheckTests: XCTestCase {
    /// For 300 keys of 1 to 40 bytes, the Swift partitioner picks the partition librdkafka's
    /// `murmur2_random` partitioner (the Java client's default) picks.
    func testPartitionerAgreesWithLibrdkafka() throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Support/librdkafka_partitions.py")
        let keys = (0..<300).map { index in
            "k\(index)-" + String(repeating: "abcdefghij", count: 4).prefix(index % 38)
        }
        let output = try ChildProcess.run(["python3", script.path], input: keys.joined(separator: "\n") + "\n")
        XCTAssertEqual(output.status, 0, output.stderr)
        var lines = output.stdout.split(separator: "\n")
        let partitions = try XCTUnwrap(Int32(lines.removeFirst()))
        XCTAssertGreaterThan(partitions, 1)
        XCTAssertEqual(lines.count, keys.count)
        for line in lines {
            let fields = line.split(separator: "\t", maxSplits: 1)
            let expected = try XCTUnwrap(Int32(fields[0]))
            let key = String(fields[1])
            XCTAssertEqual(
                Partitioner.partition(forKey: ByteBuffer(string: key), partitionCount: partitions), expected, key)
        }
    }
}
