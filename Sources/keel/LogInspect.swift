// `keel log inspect DIR`: reads a partition directory's segment files directly (it does
// not open the log, so it never repairs anything), lists segments and batches, verifies
// every CRC and says plainly where a log is damaged. Exit status 1 when it is.
import ArgumentParser
import Foundation
import NIOCore
import Records

struct LogInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List a partition directory's segments and batches and verify every CRC."
    )

    @Argument(help: "A partition directory, such as .keel/node-1/orders-0.")
    var directory: String

    @Flag(name: .long, help: "Print one line per segment only, not one per batch.")
    var summary = false

    @Option(name: .long, help: "Print at most this many batch lines per segment (0 = all).")
    var batchesMax = 0

    func run() throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CommandError("'\(directory)' is not a directory; give a partition directory such as .keel/orders-0")
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: directory)
        let segments = names.filter { $0.hasSuffix(".log") }.sorted()
        if segments.isEmpty {
            print("\(directory): no segments (*.log) found")
            return
        }
        var damaged = false
        var expectedNext: Int64? = nil
        var totals = (batches: 0, records: 0, bytes: 0)
        for name in segments {
            let report = try inspectSegment(path: directory + "/" + name, name: name, expectedNext: expectedNext)
            damaged = damaged || !report.problems.isEmpty
            expectedNext = report.nextOffset ?? expectedNext
            totals.batches += report.batches
            totals.records += report.records
            totals.bytes += report.bytes
        }
        print(
            "total: \(segments.count) segment(s), \(totals.batches) batch(es), \(totals.records) record(s), "
                + "\(totals.bytes) bytes; " + (damaged ? "DAMAGED (see above)" : "all CRCs valid")
        )
        if damaged { throw ExitCode(1) }
    }

    struct SegmentReport {
        var batches = 0
        var records = 0
        var bytes = 0
        var nextOffset: Int64?
        var problems: [String] = []
    }

    private func inspectSegment(path: String, name: String, expectedNext: Int64?) throws -> SegmentReport {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw CommandError("cannot open \(path) for reading; check its permissions")
        }
        defer { try? handle.close() }
        let data = try handle.readToEnd() ?? Data()
        var buffer = ByteBufferAllocator().buffer(capacity: data.count)
        buffer.writeBytes(data)

        var report = SegmentReport()
        let baseFromName = Int64(name.dropLast(4))
        if baseFromName == nil || name.count != 24 {
            report.problems.append("file name is not a 20-digit base offset")
        }
        print("segment \(name): \(data.count) bytes")
        var position = 0
        var printed = 0
        var next = expectedNext
        while position < buffer.writerIndex {
            let header: RecordBatchHeader
            do {
                header = try RecordBatch.validate(buffer, at: position)
            } catch {
                report.problems.append("at byte \(position): \(error); \(buffer.writerIndex - position) bytes from here on are unreadable")
                break
            }
            if position == 0, let base = baseFromName, header.baseOffset != base {
                report.problems.append("first batch has base offset \(header.baseOffset) but the file is named for \(base)")
            }
            if let expected = next, header.baseOffset != expected {
                let what = header.baseOffset < expected ? "overlaps" : "leaves a gap before"
                report.problems.append("batch at byte \(position) starts at offset \(header.baseOffset): \(what) offset \(expected)")
            }
            next = header.nextOffset.value
            report.batches += 1
            report.records += Int(header.recordsCount)
            report.bytes += header.totalSize
            if !summary && (batchesMax == 0 || printed < batchesMax) {
                printed += 1
                print("  " + describe(header, position: position))
            }
            position += header.totalSize
        }
        report.nextOffset = next
        for problem in report.problems { print("  DAMAGE: \(problem)") }
        if summary || (batchesMax > 0 && report.batches > printed) {
            print("  \(report.batches) batch(es), \(report.records) record(s)" + (report.batches > printed && !summary ? " (\(report.batches - printed) not listed)" : ""))
        }
        return report
    }

    private func describe(_ header: RecordBatchHeader, position: Int) -> String {
        var parts = [
            "offsets \(header.baseOffset)...\(header.lastOffset.value)",
            "records \(header.recordsCount)",
            "pos \(position)",
            "size \(header.totalSize)",
            "codec \(header.attributes.codec.map(String.init(describing:)) ?? "invalid")",
            "epoch \(header.partitionLeaderEpoch)",
            "time \(Self.format(ms: header.baseTimestamp))..\(Self.format(ms: header.maxTimestamp))",
        ]
        if header.producerId >= 0 {
            parts.append("producer \(header.producerId)/\(header.producerEpoch) seq \(header.baseSequence)")
        }
        if header.attributes.isControl { parts.append("control") }
        if header.attributes.isTransactional { parts.append("transactional") }
        parts.append("crc ok")
        return parts.joined(separator: "  ")
    }

    static func format(ms: Int64) -> String {
        guard ms >= 0 else { return String(ms) }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
