import Foundation
import KafkaProtocol
import NIOCore
import Records
import Synchronization
import XCTest

/// Something a test waited for did not happen in time, or a child process failed.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Polls `condition` every few milliseconds until it holds or `seconds` pass.
func waitUntil(_ what: String, seconds: Double, _ condition: () throws -> Bool) throws {
    let deadline = Date().addingTimeInterval(seconds)
    while try !condition() {
        guard Date() < deadline else { throw TestFailure("timed out after \(seconds) s waiting for \(what)") }
        usleep(10_000)
    }
}

/// A fresh temporary directory, removed by the caller.
func makeTemporaryDirectory(_ name: String) throws -> String {
    let path = NSTemporaryDirectory() + "keel-\(name)-\(UUID().uuidString.prefix(8))"
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}

/// The directory of this file's interop scripts.
let interopDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("interop")

/// The result of a child process.
struct CommandResult {
    var status: Int32
    var output: String
}

/// A child process whose standard output and error go to one file.
final class ChildProcess {
    let process = Process()
    let outputPath: String

    init(_ executable: String, _ arguments: [String], stdin: Data? = nil, outputPath: String) throws {
        self.outputPath = outputPath
        _ = FileManager.default.createFile(atPath: outputPath, contents: nil)
        let output = try FileHandle(forWritingTo: URL(fileURLWithPath: outputPath))
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [executable] + arguments
        process.standardOutput = output
        process.standardError = output
        let input = Pipe()
        process.standardInput = input
        try process.run()
        try output.close()
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
    }

    var output: String { (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? "" }

    /// Waits for the exit; on timeout kills the child and throws with its output.
    func wait(seconds: Double) throws -> CommandResult {
        do {
            try waitUntil("\(process.arguments ?? []) to exit", seconds: seconds) { !process.isRunning }
        } catch {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw TestFailure("\(error)\n--- output ---\n\(output)")
        }
        process.waitUntilExit()
        return CommandResult(status: process.terminationStatus, output: output)
    }
}

/// Runs a command to completion with a deadline.
func runCommand(_ executable: String, _ arguments: [String], stdin: Data? = nil, seconds: Double = 60) throws
    -> CommandResult
{
    let path = NSTemporaryDirectory() + "keel-cmd-\(UUID().uuidString.prefix(8)).out"
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try ChildProcess(executable, arguments, stdin: stdin, outputPath: path).wait(seconds: seconds)
}

/// Runs an interop script with python3; fails the test with the script's output unless it ends with PASS.
func runInteropScript(
    _ name: String, _ arguments: [String], seconds: Double = 120, file: StaticString = #filePath,
    line: UInt = #line
) throws {
    let script = interopDirectory.appendingPathComponent(name).path
    let result = try runCommand("python3", [script] + arguments, seconds: seconds)
    XCTAssertEqual(result.status, 0, "\(name) failed:\n\(result.output)", file: file, line: line)
    XCTAssertTrue(result.output.contains("PASS"), "\(name) did not pass:\n\(result.output)", file: file, line: line)
}

/// Text shared with a pipe's reading thread.
final class SharedText: Sendable {
    let value = Mutex("")
}

/// A real `keel broker` process on a loopback port with its own data directory.
final class BrokerProcess {
    let process = Process()
    let dataDirectory: String
    let logPath: String
    private(set) var port = 0
    private let stdoutText = SharedText()

    /// The `keel` binary built next to the test bundle.
    static func keelBinary() throws -> URL {
        var candidates = [Bundle(for: BrokerProcess.self).bundleURL.deletingLastPathComponent()]
        candidates.append(URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        for directory in candidates {
            let keel = directory.appendingPathComponent("keel")
            if FileManager.default.isExecutableFile(atPath: keel.path) { return keel }
        }
        throw TestFailure("no keel binary next to the tests in \(candidates.map(\.path))")
    }

    /// Starts a broker on `port` (0 = a free one) and waits until it listens.
    init(dataDirectory: String, port: Int = 0, arguments: [String] = []) throws {
        self.dataDirectory = dataDirectory
        self.logPath = dataDirectory + ".log"
        if !FileManager.default.fileExists(atPath: logPath) {
            _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        log.seekToEndOfFile()
        process.executableURL = try Self.keelBinary()
        process.arguments =
            [
                "broker", "--listen", "127.0.0.1:\(port)", "--data-dir", dataDirectory, "--threads", "2",
            ] + arguments
        let out = Pipe()
        process.standardOutput = out
        process.standardError = log
        let text = stdoutText
        out.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            text.value.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        try log.close()
        var found = 0
        try waitUntil("the broker to listen (log: \(logPath))", seconds: 30) {
            guard process.isRunning else { throw TestFailure("broker exited:\n\(self.log)") }
            let line = stdoutText.value.withLock { $0 }.split(separator: "\n").first { $0.contains("listening on") }
            guard let line, let colon = line.lastIndex(of: ":"), let bound = Int(line[line.index(after: colon)...])
            else { return false }
            found = bound
            return true
        }
        self.port = found
    }

    var bootstrap: String { "127.0.0.1:\(port)" }

    /// What the broker printed on standard output so far.
    var stdout: String { stdoutText.value.withLock { $0 } }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits for the process to exit; returns its status.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, seconds: Double = 30) throws -> Int32 {
        if process.isRunning { kill(process.processIdentifier, signal) }
        try waitUntil("the broker to exit", seconds: seconds) { !process.isRunning }
        process.waitUntilExit()
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }
}

/// A blocking TCP connection that speaks raw Kafka frames, for bad-input and protocol tests.
final class RawConnection {
    let fd: Int32

    init(port: Int, timeoutSeconds: Int = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else { throw TestFailure("connect: errno \(errno)") }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes {
                Glibc.send(fd, $0.baseAddress! + done, bytes.count - done, Int32(MSG_NOSIGNAL))
            }
            guard n > 0 else { throw TestFailure("send: errno \(errno)") }
            done += n
        }
    }

    func send(_ buffer: ByteBuffer) throws { try send(Array(buffer.readableBytesView)) }

    /// Reads exactly `count` bytes; nil if the peer closed first.
    private func read(_ count: Int) throws -> [UInt8]? {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + done, count - done, 0) }
            if n == 0 { return nil }
            if n < 0 {
                if errno == ECONNRESET { return nil }
                throw TestFailure("recv: errno \(errno) (timed out?)")
            }
            done += n
        }
        return bytes
    }

    /// The next response frame (without its size), or nil once the broker closed the connection.
    func readFrame() throws -> ByteBuffer? {
        guard let size = try read(4) else { return nil }
        let length = Int(Int32(bigEndian: size.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }))
        guard let body = try read(length) else { return nil }
        return ByteBuffer(bytes: body)
    }

    /// Whether the broker closed the connection (reads end) within the receive timeout.
    func isClosedByPeer() throws -> Bool {
        var byte = [UInt8](repeating: 0, count: 1)
        let n = byte.withUnsafeMutableBytes { recv(fd, $0.baseAddress!, 1, 0) }
        return n == 0 || (n < 0 && errno == ECONNRESET)
    }

    /// Sends a request and decodes its answer.
    func roundTrip<R: KafkaRequestMessage>(_ request: R, version: Int16, correlationId: Int32 = 7) throws
        -> R.Response
    {
        try send(
            KafkaRequestEncoder.encodeFrame(request, version: version, correlationId: correlationId, clientId: "t"))
        guard let frame = try readFrame() else { throw TestFailure("connection closed instead of an answer") }
        let (header, body) = try KafkaResponseDecoder.decode(R.Response.self, frame: frame, version: version)
        XCTAssertEqual(header.correlationId, correlationId)
        return body
    }
}

/// One batch of `count` small records, uncompressed.
func makeBatch(
    count: Int, producerId: Int64 = -1, epoch: Int16 = -1, sequence: Int32 = -1, valueBytes: Int = 8,
    timestamp: Int64 = 1_700_000_000_000
) throws -> ByteBuffer {
    var builder = RecordBatchBuilder()
    for i in 0..<count {
        builder.append(
            timestamp: timestamp + Int64(i), key: ByteBuffer(string: "k\(i)"),
            value: ByteBuffer(repeating: UInt8(truncatingIfNeeded: i), count: valueBytes))
    }
    return try builder.build(producerId: producerId, producerEpoch: epoch, baseSequence: sequence)
}

/// A Produce v7 request for one partition.
func produceRequest(
    _ topic: String, partition: Int32 = 0, records: ByteBuffer?, acks: Int16 = -1,
    timeoutMs: Int32 = 10_000
) -> ProduceRequest {
    ProduceRequest(
        transactionalId: nil, acks: acks, timeoutMs: timeoutMs,
        topicData: [.init(name: topic, partitionData: [.init(index: partition, records: records)])])
}
