import Broker
import Foundation
import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import NIOEmbedded
import Records
import Synchronization
import XCTest

/// The broker in-process, on an `EmbeddedEventLoop` with manual time and a blocking pool
/// the test runs by hand: group commit answers acks=all only once the fsync covering the
/// batch has run, REQUEST_TIMED_OUT comes from the loop's clock, and a long poll wakes on
/// the flush. No sockets, no wall clock.
final class BrokerEngineTests: XCTestCase {
    /// A blocking pool whose work runs only when the test says so.
    final class ManualExecutor: BlockingExecutor {
        let queue = Mutex<[@Sendable () -> Void]>([])

        func run<Value: Sendable>(on loop: any EventLoop, _ work: @escaping @Sendable () throws -> Value)
            -> EventLoopFuture<Value>
        {
            let promise = loop.makePromise(of: Value.self)
            queue.withLock { $0.append { promise.completeWith(Result { try work() }) } }
            return promise.futureResult
        }

        var pendingCount: Int { queue.withLock { $0.count } }

        func runAll() {
            let work = queue.withLock { queue -> [@Sendable () -> Void] in
                defer { queue.removeAll() }
                return queue
            }
            for item in work { item() }
        }
    }

    struct FixedClock: BrokerClock {
        func now() -> Milliseconds { Milliseconds(1_700_000_000_000) }
    }

    var directory = ""
    let loop = EmbeddedEventLoop()
    let executor = ManualExecutor()
    var broker: Broker?

    /// Runs the loop and the blocking pool, advancing time by a tick, until `condition` holds (bounded).
    private func pump(_ what: String, _ condition: () throws -> Bool) throws {
        for _ in 0..<400 {
            loop.run()
            executor.runAll()
            loop.run()
            if try condition() { return }
            loop.advanceTime(by: .milliseconds(10))
        }
        throw TestFailure("never happened: \(what)")
    }

    override func setUpWithError() throws {
        directory = try makeTemporaryDirectory("engine")
        let environment = BrokerEnvironment(
            clock: FixedClock(), blocking: executor, fileIO: PosixFileIO(), seed: 42,
            removeDirectory: { try FileManager.default.removeItem(atPath: $0) })
        let broker = Broker(
            config: BrokerConfig(dataDirectory: directory), environment: environment, group: loop,
            logger: Logger(label: "test"))
        self.broker = broker
        let started = broker.start()
        try pump("the start") { isDone(started) }
        _ = try value(started)
        try pump("the node catching up") { broker.isCaughtUp }
        let created = try send(
            CreateTopicsRequest(
                topics: [.init(name: "t", numPartitions: 1, replicationFactor: 1, assignments: [], configs: [])],
                timeoutMs: 1000, validateOnly: false), version: 3
        ) { .createTopics($0) }
        try pump("the creation") { isDone(created) }
        let answer = try decode(try value(created), as: CreateTopicsResponse.self, version: 3)
        XCTAssertEqual(answer.topics.first?.errorCode, ErrorCode.none)
        // The new partition elects itself and makes its empty log durable.
        try pump("the partition's leader") {
            executor.pendingCount == 0 && (try? latestAnswer())?.errorCode == ErrorCode.none
        }
    }

    override func tearDownWithError() throws {
        if let broker {
            let closed = broker.shutdown()
            for _ in 0..<10 where executor.pendingCount > 0 || !isDone(closed) {
                loop.run()
                executor.runAll()
                loop.run()
            }
            _ = try value(closed)
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    private var nextCorrelationId: Int32 = 0

    /// The value of a completed future; throws instead of blocking when it has not completed.
    private func value<Value>(_ future: EventLoopFuture<Value>, _ what: String = #function) throws -> Value {
        var result: Result<Value, any Error>?
        future.assumeIsolated().whenComplete { result = $0 }
        guard let result else { throw TestFailure("\(what): not answered") }
        return try result.get()
    }

    /// Whether `future` has completed (the embedded loop runs callbacks of completed futures at once).
    private func isDone<Value>(_ future: EventLoopFuture<Value>) -> Bool {
        var done = false
        future.assumeIsolated().whenComplete { _ in done = true }
        return done
    }

    /// Starts a request; run the loop (and the executor) to get its answer.
    private func send<R: KafkaRequestMessage>(_ request: R, version: Int16, into requests: (R) -> KafkaRequest)
        throws -> EventLoopFuture<BrokerResponse>
    {
        nextCorrelationId += 1
        let header = RequestHeader(
            apiKey: R.apiKey, apiVersion: version, correlationId: nextCorrelationId, clientId: "test")
        return try XCTUnwrap(broker).handle(DecodedRequest(header: header, request: requests(request)), on: loop)
    }

    private func decode<M: KafkaMessage>(_ response: BrokerResponse, as type: M.Type, version: Int16) throws -> M {
        guard case .frame(var frame) = response else { throw TestFailure("expected a frame, got \(response)") }
        frame.moveReaderIndex(forwardBy: 4)
        return try KafkaResponseDecoder.decode(M.self, frame: frame, version: version).body
    }

    private func ask<R: KafkaRequestMessage>(_ request: R, version: Int16) throws -> R.Response {
        let future: EventLoopFuture<BrokerResponse>
        switch request {
        case let body as CreateTopicsRequest: future = try send(body, version: version) { .createTopics($0) }
        case let body as ListOffsetsRequest: future = try send(body, version: version) { .listOffsets($0) }
        default: throw TestFailure("no dispatch for \(R.self)")
        }
        loop.run()
        return try decode(try value(future, "\(R.self)"), as: R.Response.self, version: version)
    }

    private func latestAnswer() throws -> ListOffsetsResponse.Topic.Partition {
        let answer = try ask(
            ListOffsetsRequest(
                replicaId: -1, isolationLevel: 0,
                topics: [.init(name: "t", partitions: [.init(partitionIndex: 0, timestamp: -1)])]),
            version: 2)
        return try XCTUnwrap(answer.topics.first?.partitions.first)
    }

    private func latest() throws -> Int64 {
        try latestAnswer().offset
    }

    private func produce(acks: Int16, count: Int, timeoutMs: Int32 = 30_000) throws -> EventLoopFuture<BrokerResponse> {
        try send(
            produceRequest("t", records: try makeBatch(count: count), acks: acks, timeoutMs: timeoutMs), version: 7
        ) { .produce($0) }
    }

    func testAcksAllIsAnsweredByTheFlushThatCoversItAndTimesOutWithoutOne() throws {
        let first = try produce(acks: -1, count: 3)
        let second = try produce(acks: -1, count: 2)
        let leader = try produce(acks: 1, count: 1)
        loop.run()
        XCTAssertTrue(isDone(leader), "acks=1 is answered after the local append")
        XCTAssertFalse(isDone(first), "acks=all waits for the fsync")
        XCTAssertEqual(try latest(), 0, "nothing is readable before the fsync")
        XCTAssertEqual(executor.pendingCount, 1, "one flush at a time")
        executor.runAll()
        loop.run()
        XCTAssertTrue(isDone(first), "the first flush covered the first batch")
        XCTAssertFalse(isDone(second), "the second batch came while the first flush ran")
        XCTAssertEqual(try latest(), 3)
        XCTAssertEqual(executor.pendingCount, 1, "one flush for everything appended meanwhile (group commit)")
        executor.runAll()
        loop.run()
        let answers = try [first, second].map {
            try decode(try value($0, "acks=all"), as: ProduceResponse.self, version: 7).responses[0].partitionResponses[
                0]
        }
        XCTAssertEqual(answers.map(\.errorCode), [.none, .none])
        XCTAssertEqual(answers.map(\.baseOffset), [0, 3])
        XCTAssertEqual(try latest(), 6)

        let late = try produce(acks: -1, count: 4, timeoutMs: 100)
        loop.run()
        loop.advanceTime(by: .milliseconds(99))
        XCTAssertFalse(isDone(late))
        loop.advanceTime(by: .milliseconds(1))
        let timedOut = try decode(try value(late, "timed out"), as: ProduceResponse.self, version: 7)
        XCTAssertEqual(timedOut.responses[0].partitionResponses[0].errorCode, .requestTimedOut)
        executor.runAll()
        loop.run()
        XCTAssertEqual(try latest(), 10, "a timed-out batch is still stored once durable")
    }

    func testALongPollWakesWhenAFlushMakesDataReadable() throws {
        let fetch = FetchRequest(
            replicaId: -1, maxWaitMs: 5000, minBytes: 1, maxBytes: 1 << 20, isolationLevel: 0, sessionId: 0,
            sessionEpoch: -1,
            topics: [
                .init(
                    topic: "t",
                    partitions: [
                        .init(
                            partition: 0, currentLeaderEpoch: -1, fetchOffset: 0, logStartOffset: -1,
                            partitionMaxBytes: 1 << 20)
                    ])
            ], forgottenTopicsData: [], rackId: "")
        let poll = try send(fetch, version: 11) { .fetch($0) }
        loop.run()
        XCTAssertFalse(isDone(poll))
        _ = try produce(acks: 1, count: 2)
        loop.run()
        XCTAssertFalse(isDone(poll), "appended but not yet durable: not readable")
        executor.runAll()
        loop.run()
        guard case .fetch(let parts, let records) = try value(poll) else { return XCTFail("a fetch answer") }
        XCTAssertEqual(records.count, 1)
        XCTAssertEqual(records[0]?.first?.firstOffset, Offset(0))
        XCTAssertTrue(parts.contains { if case .records = $0 { true } else { false } })
    }
}
