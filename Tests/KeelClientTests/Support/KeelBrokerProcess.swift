import Foundation
import XCTest

/// A real `keel broker` child process on a free loopback port, with its own data directory.
///
/// Until `keel broker` is part of the `keel` binary these tests are built with, `start`
/// throws `XCTSkip`; once it is, the tests that use it run against the real node.
final class KeelBrokerProcess {
    let bootstrap: String
    private let process: Process

    enum StartError: Error { case noAddress(String) }
    private let dataDirectory: URL

    /// The `keel` binary beside the test executable.
    static func keelBinary() -> String? {
        let candidates = [
            Bundle.main.executableURL?.deletingLastPathComponent(),
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
            Bundle(for: KeelBrokerProcess.self).bundleURL.deletingLastPathComponent(),
        ]
        for directory in candidates.compactMap({ $0 }) {
            let path = directory.appendingPathComponent("keel").path
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }

    /// Starts a broker and waits (up to 30 s) until it says where it listens.
    init() throws {
        guard let keel = Self.keelBinary() else { throw XCTSkip("no keel binary beside the tests") }
        let probe = try ChildProcess.run([keel, "broker", "--help"], timeoutSeconds: 30)
        guard probe.status == 0, probe.stdout.contains("keel broker") else {
            throw XCTSkip("this keel has no `keel broker` yet")
        }
        dataDirectory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "keel-client-broker-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dataDirectory, withIntermediateDirectories: true)
        process = Process()
        process.executableURL = URL(fileURLWithPath: keel)
        process.arguments = [
            "broker", "--listen", "127.0.0.1:0", "--data-dir", dataDirectory.appendingPathComponent("node-1").path,
            "--threads", "2",
        ]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        let text = LockedBox("")
        stdout.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            text.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        var address: String?
        while address == nil && Date() < deadline && process.isRunning {
            let line = text.value.split(separator: "\n").first { $0.contains("listening on ") }
            if let line, let range = line.range(of: "listening on ") {
                address = String(line[range.upperBound...]).trimmingCharacters(in: .whitespaces)
            } else {
                usleep(20_000)
            }
        }
        stdout.fileHandleForReading.readabilityHandler = nil
        guard let address else {
            if process.isRunning { process.terminate() }
            process.waitUntilExit()
            throw StartError.noAddress("keel broker did not say where it listens within 30 s")
        }
        bootstrap = address
    }

    /// SIGTERM, wait for the exit (SIGKILL after 20 s), remove the data.
    func stop() {
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(20)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        try? FileManager.default.removeItem(at: dataDirectory)
    }

    deinit { if process.isRunning { stop() } }
}
