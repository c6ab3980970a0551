import Foundation

/// A child process that runs beside a test: its stdout lines are collected as they come, and
/// `stop` ends it by closing its stdin (SIGTERM if it lingers). Its stderr is dropped, or written
/// to the file BACKGROUND_STDERR names (for debugging a test).
final class BackgroundProcess: @unchecked Sendable {
    private let process = Process()
    private let stdin = Pipe()
    private let output = LockedBox("")

    /// Starts `arguments[0]` (looked up on PATH).
    init(_ arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardInput = stdin
        let stdout = Pipe()
        process.standardOutput = stdout
        if let path = ProcessInfo.processInfo.environment["BACKGROUND_STDERR"] {
            FileManager.default.createFile(atPath: path, contents: nil)
            process.standardError = FileHandle(forWritingAtPath: path) ?? FileHandle.nullDevice
        } else {
            process.standardError = FileHandle.nullDevice
        }
        let output = self.output
        stdout.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            output.withLock { $0 += String(decoding: data, as: UTF8.self) }
        }
        try process.run()
    }

    /// The complete lines printed so far.
    var lines: [String] {
        let text = output.value
        var complete = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        complete.removeLast()  // the part after the last newline is not a whole line yet
        return complete
    }

    /// Closes stdin and waits up to 10 s for the child to finish, then terminates it.
    func stop() {
        try? stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(10)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    deinit { if process.isRunning { stop() } }
}
