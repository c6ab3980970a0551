import Foundation

/// librdkafka's mock Kafka cluster in a child process (Support/mock_cluster.py): a real
/// implementation of the Kafka protocol's data path to test the client against.
final class MockCluster {
    let bootstrap: String
    private let process: Process
    private let stdin: Pipe

    enum StartError: Error {
        case noPython
        case noAddress(String)
    }

    /// Starts a cluster of `brokers` brokers and waits (up to 20 s) for its address.
    init(brokers: Int = 1) throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "mock_cluster.py")
        let outfile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "keel-mock-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).txt")
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, String(brokers), outfile.path]
        stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        let deadline = Date().addingTimeInterval(20)
        var address: String?
        while Date() < deadline && process.isRunning {
            if let text = try? String(contentsOf: outfile, encoding: .utf8), !text.isEmpty {
                address = text
                break
            }
            usleep(20_000)
        }
        try? FileManager.default.removeItem(at: outfile)
        guard let address else {
            process.terminate()
            process.waitUntilExit()
            throw StartError.noAddress("mock cluster did not start (is confluent-kafka installed? tools/setup)")
        }
        bootstrap = address
    }

    /// Stops the child: closing its stdin ends it; SIGTERM if it lingers.
    func stop() {
        try? stdin.fileHandleForWriting.close()
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
    }

    deinit { if process.isRunning { stop() } }
}
