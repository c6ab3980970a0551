import Foundation
import LogStorage
import NIOCore
import Records
import XCTest

/// `keel log inspect` reads partitions that LogStorage wrote, and names the damage in one it did not.
final class LogInspectTests: XCTestCase {
    var directory = ""

    override func setUpWithError() throws {
        directory = NSTemporaryDirectory() + "keel-inspect-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// A healthy multi-segment log is listed batch by batch with every CRC valid and exit status 0.
    func testInspectListsEverySegmentAndBatchOfAHealthyLog() throws {
        let segments = try writeLog(batches: 30)
        XCTAssertGreaterThan(segments.count, 2, "small segments make the log roll")
        let result = try runKeel(["log", "inspect", directory])
        XCTAssertEqual(result.status, 0, result.output)
        for segment in segments {
            XCTAssertTrue(result.output.contains("segment \((segment.path as NSString).lastPathComponent)"), result.output)
        }
        XCTAssertTrue(result.output.contains("offsets 0...2  records 3"), result.output)
        XCTAssertTrue(result.output.contains("codec lz4"), result.output)
        XCTAssertTrue(result.output.contains("30 batch(es), 90 record(s)"), result.output)
        XCTAssertTrue(result.output.contains("all CRCs valid"), result.output)
        XCTAssertFalse(result.output.contains("DAMAGE"), result.output)
    }

    /// One flipped byte inside a middle segment is reported with its position and exit status 1.
    func testInspectReportsAFlippedByteWithItsPosition() throws {
        let segments = try writeLog(batches: 30)
        let victim = segments[1]
        let position = 61 + 5  // inside the first batch's records section: covered by the CRC
        let handle = try XCTUnwrap(FileHandle(forUpdatingAtPath: victim.path))
        try handle.seek(toOffset: UInt64(position))
        let byte = try XCTUnwrap(handle.readData(ofLength: 1).first)
        try handle.seek(toOffset: UInt64(position))
        handle.write(Data([byte ^ 0x40]))
        try handle.close()

        let result = try runKeel(["log", "inspect", directory])
        XCTAssertEqual(result.status, 1, result.output)
        XCTAssertTrue(result.output.contains("DAMAGE: at byte 0: CRC mismatch"), result.output)
        XCTAssertTrue(result.output.contains("DAMAGED"), result.output)
    }

    /// A mistake on the command line gets one line saying what to do, not a usage dump.
    func testInspectOfAMissingDirectoryIsOneClearLine() throws {
        let result = try runKeel(["log", "inspect", directory + "/nothere"])
        XCTAssertNotEqual(result.status, 0)
        let lines = result.output.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, result.output)
        XCTAssertTrue(result.output.contains("is not a directory"), result.output)
    }

    /// Writes `batches` LZ4 batches of 3 records each into a log with tiny segments.
    func writeLog(batches: Int) throws -> [SegmentInfo] {
        var config = LogConfig()
        config.segmentBytesMax = 1024
        let (log, _) = try PartitionLog.open(directory: directory, config: config, io: PosixFileIO(), now: Milliseconds(0))
        for index in 0..<batches {
            var builder = RecordBatchBuilder()
            for record in 0..<3 {
                builder.append(
                    timestamp: 1_764_000_000_000 + Int64(index * 3 + record),
                    key: ByteBuffer(string: "key-\(index)"),
                    value: ByteBuffer(string: "value \(index)/\(record) " + String(repeating: "x", count: 100))
                )
            }
            var batch = try builder.build(codec: .lz4)
            _ = try log.append(&batch, leaderEpoch: 1, now: Milliseconds(0))
        }
        _ = try log.flush()
        let segments = log.segmentInfos
        try log.close()
        return segments
    }

    func runKeel(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = try keelBinary()
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    /// The `keel` binary next to the test bundle (.build/debug/keel).
    func keelBinary() throws -> URL {
        let candidates = [
            Bundle(for: LogInspectTests.self).bundleURL.deletingLastPathComponent(), Bundle.main.bundleURL,
        ]
        for directory in candidates {
            let url = directory.appendingPathComponent("keel")
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        struct NotFound: Error, CustomStringConvertible { var description: String }
        throw NotFound(description: "keel binary not found next to the test bundle: \(candidates.map(\.path))")
    }
}
