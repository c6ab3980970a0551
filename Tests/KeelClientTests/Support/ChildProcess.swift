import Foundation

/// Runs a child process to completion with a deadline, feeding `input` on stdin.
enum ChildProcess {
    struct Output {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    enum Failure: Error { case timedOut([String]) }

    /// Runs `arguments[0]` (looked up on PATH through /usr/bin/env) and waits at most `timeoutSeconds`.
    static func run(_ arguments: [String], input: String = "", timeoutSeconds: Double = 60) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        // Read both pipes on their own threads so that a chatty child never blocks on a full pipe.
        let outBox = PipeCollector(stdout.fileHandleForReading)
        let errBox = PipeCollector(stderr.fileHandleForReading)
        stdin.fileHandleForWriting.write(Data(input.utf8))
        try? stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            throw Failure.timedOut(arguments)
        }
        process.waitUntilExit()
        return Output(status: process.terminationStatus, stdout: outBox.text(), stderr: errBox.text())
    }
}

/// Drains a pipe on a background thread.
final class PipeCollector: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var data = Data()

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func text() -> String {
        done.wait()
        return String(decoding: data, as: UTF8.self)
    }
}
