import Foundation
import Glibc
import LogStorage
import NIOCore
import Records
import XCTest

@testable import keel_crash_writer

/// Reads `durable <offset>` lines from a child's stdout with poll(2) and a deadline.
struct DurableLineReader {
    let descriptor: Int32
    var pending: [UInt8] = []
    var closed = false

    /// The next durable offset, nil at end of file; throws when the deadline passes.
    mutating func next(deadline: ContinuousClock.Instant) throws -> Int64? {
        try next(deadline: deadline, timeoutIsError: true)
    }

    /// The next durable offset, nil at end of file or when `deadline` passes.
    mutating func nextOrNil(until deadline: ContinuousClock.Instant) throws -> Int64? {
        try next(deadline: deadline, timeoutIsError: false)
    }

    mutating func next(deadline: ContinuousClock.Instant, timeoutIsError: Bool) throws -> Int64? {
        while true {
            if let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: pending[..<newline], as: UTF8.self)
                pending.removeSubrange(...newline)
                guard line.hasPrefix("durable "), let value = Int64(line.dropFirst(8)) else {
                    throw CrashTestError("unexpected line from the writer: \(line)")
                }
                return value
            }
            if closed { return nil }
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                if timeoutIsError { throw CrashTestError("timed out waiting for the writer") }
                return nil
            }
            var poller = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
            let (seconds, attoseconds) = left.components
            let milliseconds = Int32(min(seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1, 10_000))
            let ready = poll(&poller, 1, milliseconds)
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if n <= 0 { closed = true } else { pending += chunk[..<n] }
        }
    }
}

struct CrashTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

final class CrashTests: XCTestCase {
    /// The writer's binary, next to the test bundle (.build/debug/keel-crash-writer).
    func writerPath() throws -> String {
        var candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()]
        candidates.append(Bundle(for: CrashTests.self).bundleURL.deletingLastPathComponent())
        candidates.append(Bundle.main.bundleURL)
        for directory in candidates {
            let path = directory.appendingPathComponent("keel-crash-writer").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        throw CrashTestError("keel-crash-writer not found in \(candidates.map(\.path))")
    }

    /// Where the batch at `offset` starts in a segment based at `base`, by regenerating
    /// the batches in between.
    func position(of offset: Offset, inSegmentAt base: Offset, seed: UInt64) -> Int {
        var position = 0
        var current = base
        while current < offset {
            let batch = CrashWorkload.batch(seed: seed, offset: current)
            position += batch.readableBytes
            current = current.advanced(by: Int64(batch.getInteger(at: 23, as: Int32.self)!) + 1)
        }
        return position
    }

    /// A writer killed with SIGKILL at random moments — with its unsynced tail kept, cut
    /// short or overwritten with garbage — always leaves a log that is a prefix of what it
    /// wrote, holds every offset it reported durable, and has no batch failing its CRC.
    ///
    /// The seed fixes every choice (kill after how many lines and how many microseconds,
    /// which fault, where); how far the real child got by then depends on scheduling, so
    /// a replay repeats the choices, not the exact interleaving. KEEL_CRASH_ROUNDS sets
    /// the number of rounds, KEEL_CRASH_VERBOSE=1 prints each round's recovery report.
    func testKilledWriterAlwaysLeavesADurablePrefix() throws {
        let environment = ProcessInfo.processInfo.environment
        let seed = environment["KEEL_CRASH_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 0...UInt64(UInt32.max))
        let rounds = environment["KEEL_CRASH_ROUNDS"].flatMap(Int.init) ?? 30
        print("crash test: seed \(seed), \(rounds) rounds (replay with KEEL_CRASH_SEED=\(seed))")
        var random = CrashWorkload.Generator(state: seed)
        let writer = try writerPath()
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let testDeadline = ContinuousClock.now + .seconds(90)
        var maxDurable: Int64 = 0
        var faults = [0, 0, 0]
        var cut = 0
        var completed = 0
        for round in 0..<rounds {
            if ContinuousClock.now > testDeadline {
                print("crash test: stopping after \(round) rounds (time bound)")
                break
            }
            let process = Process()
            process.executableURL = URL(fileURLWithPath: writer)
            process.arguments = [dir.partition, String(seed)]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            var reader = DurableLineReader(descriptor: pipe.fileHandleForReading.fileDescriptor)
            let wanted = 1 + Int(random.next() % 40)
            let deadline = ContinuousClock.now + .seconds(30)
            var lines = 0
            do {
                while lines < wanted, let durable = try reader.next(deadline: deadline) {
                    XCTAssertGreaterThanOrEqual(durable, maxDurable, "durable offsets never go back")
                    maxDurable = max(maxDurable, durable)
                    lines += 1
                }
                // Lines arrive right after a flush; kill a random 0-4 ms later so that the
                // kill lands anywhere in the writer's cycle (appends, fsync, output).
                let killAt = ContinuousClock.now + .microseconds(Int(random.next() % 4_000))
                while let durable = try reader.nextOrNil(until: killAt) { maxDurable = max(maxDurable, durable) }
            } catch {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw error
            }
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            while let durable = try reader.next(deadline: ContinuousClock.now + .seconds(10)) {
                maxDurable = max(maxDurable, durable)
            }
            try? pipe.fileHandleForReading.close()
            XCTAssertEqual(lines, wanted, "round \(round): the writer stopped early")
            XCTAssertEqual(process.terminationReason, .uncaughtSignal)

            // What the disk could lose: everything after the last durable byte of the
            // active segment. Durable is what the writer reported, or more: a flush after
            // a roll also persists the recovery point (log.checkpoint bytes 14..<22), and
            // the writer may have died before printing the line for that flush.
            let checkpoint = Disk.bytes(dir.partition + "/log.checkpoint")
            let recoveryPoint =
                checkpoint.count == 26 ? checkpoint[14..<22].reduce(Int64(0)) { $0 << 8 | Int64($1) } : 0
            let synced = max(maxDurable, recoveryPoint)
            let names = try FileManager.default.contentsOfDirectory(atPath: dir.partition)
            let activeBase = names.filter { $0.hasSuffix(".log") }.compactMap { Int64($0.dropLast(4)) }.max() ?? 0
            let activePath = dir.partition + "/" + String(format: "%020ld", activeBase) + ".log"
            let size = Disk.size(activePath)
            let durableBytes =
                synced > activeBase ? position(of: Offset(synced), inSegmentAt: Offset(activeBase), seed: seed) : 0
            XCTAssertLessThanOrEqual(durableBytes, size, "round \(round): durable bytes missing from the file")
            let fault = Int(random.next() % 3)
            faults[fault] += 1
            if fault == 1, size > durableBytes {
                Disk.truncate(activePath, to: durableBytes + Int(random.next() % UInt64(size - durableBytes + 1)))
            } else if fault == 2, size > durableBytes {
                let start = durableBytes + Int(random.next() % UInt64(size - durableBytes))
                let length = min(32 + Int(random.next() % 200), size - start)
                var contents = Disk.bytes(activePath)
                for i in start..<(start + length) { contents[i] = UInt8(truncatingIfNeeded: random.next()) }
                Disk.write(contents, to: activePath)
            }

            let (log, report) = try openLog(
                dir.partition, config: CrashWorkload.config,
                now: CrashWorkload.baseTimeMs)
            cut += report.truncations.isEmpty ? 0 : 1
            if environment["KEEL_CRASH_VERBOSE"] != nil {
                print("round \(round): fault \(fault), active \(activeBase), size \(size), synced \(durableBytes)")
                print(report)
            }
            XCTAssertGreaterThanOrEqual(
                log.logEndOffset.value, maxDurable,
                "round \(round): lost durable offsets\n\(report)")
            var expected = Offset.zero
            for (offset, bytes) in try readAll(log) {
                XCTAssertEqual(offset, expected, "round \(round): offsets are not contiguous")
                let regenerated = CrashWorkload.batch(seed: seed, offset: offset)
                guard bytes == regenerated.getBytes(at: 0, length: regenerated.readableBytes) else {
                    XCTFail("round \(round): batch at \(offset) differs from what the writer wrote")
                    break
                }
                expected = offset.advanced(by: Int64(regenerated.getInteger(at: 23, as: Int32.self)!) + 1)
            }
            XCTAssertEqual(expected, log.logEndOffset)
            for _ in 0..<20 where log.logEndOffset.value > 0 {
                let target = Int64(random.next() % UInt64(log.logEndOffset.value))
                let read = try log.readVerified(from: Offset(target), maxBytes: 1)
                let regenerated = CrashWorkload.batch(seed: seed, offset: read.firstOffset)
                XCTAssertLessThanOrEqual(read.firstOffset.value, target)
                XCTAssertGreaterThan(read.nextOffset.value, target)
                XCTAssertEqual(
                    read.bytes.getBytes(at: 0, length: read.bytes.readableBytes),
                    regenerated.getBytes(at: 0, length: regenerated.readableBytes))
            }
            try log.close()
            completed += 1
        }
        print(
            "crash test: seed \(seed), \(completed) rounds, offsets up to \(maxDurable) durable, "
                + "faults kept/cut/garbage \(faults), \(cut) reopens truncated a tail")
        XCTAssertGreaterThan(completed, 5)
    }
}
