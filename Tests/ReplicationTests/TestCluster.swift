// A deterministic world of replicas for the tests: N ReplicaEngines, each over real PartitionLogs on its own
// SimulatedDisk, wired through an in-memory network that carries every message encoded by ReplicationCodec
// (heartbeats through a HeartbeatCoalescer), with flushes that the world completes later. Seeded: the same
// seed replays the same run.
import LogStorage
import NIOCore
import Raft
import Records
import Replication
import Simulation
import XCTest

final class TestCluster {
    final class Link: RaftTransport {
        unowned let cluster: TestCluster
        let node: Int
        var coalescer = HeartbeatCoalescer()

        init(cluster: TestCluster, node: Int) {
            self.cluster = cluster
            self.node = node
        }

        func send(_ message: ReplicationMessage) {
            if let frame = coalescer.route(message) { cluster.transmit(frame, from: node) }
        }
    }

    struct InFlight {
        var at: Int
        var sequence: Int
        var from: Int
        var to: Int
        var bytes: ByteBuffer
    }

    struct PendingFlush {
        var at: Int
        var node: Int
        var incarnation: Int
        var request: FlushRequest
    }

    static let group = GroupID(topic: "orders", partition: 0)
    static let directory = "/data/orders-0"

    let seed: UInt64
    var random: SeededRandom
    let size: Int
    var disks: [SimulatedDisk]
    var engines: [ReplicaEngine<Int>?]
    var links: [Link] = []
    var incarnations: [Int]
    var network: [InFlight] = []
    var flushes: [PendingFlush] = []
    var sequence = 0
    var now = 0
    var logConfig: LogConfig
    var raftOptions: (electionMin: Int, electionMax: Int)
    /// `blocked[from][to]`: messages on that link are dropped.
    var blocked: [[Bool]]
    var lossPercent = 0
    var delayTicksMax = 2
    var flushDelayTicksMax = 1
    /// Flushes of these nodes take this many ticks instead.
    var slowFlushes: [Int: Int] = [:]
    /// Outcomes of awaited commits, by token.
    var outcomes: [Int: Result<Proposal, ReplicaError>] = [:]
    var trace: [String] = []

    init(seed: UInt64, size: Int = 3, logConfig: LogConfig = LogConfig(segmentBytesMax: 4096)) {
        self.seed = seed
        random = SeededRandom(seed: seed)
        self.size = size
        self.logConfig = logConfig
        raftOptions = (10, 20)
        disks = (0..<size).map { _ in SimulatedDisk() }
        engines = Array(repeating: nil, count: size)
        incarnations = Array(repeating: 0, count: size)
        blocked = Array(repeating: Array(repeating: false, count: size), count: size)
        links = (0..<size).map { Link(cluster: self, node: $0) }
        for k in 0..<size { start(k) }
    }

    func chance(_ percent: Int) -> Bool { percent > 0 && Int(random.next() % 100) < percent }
    func uniform(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(random.next() % UInt64(range.count))
    }

    var millis: Milliseconds { Milliseconds(1_700_000_000_000 + Int64(now) * 100) }

    func start(_ k: Int) {
        incarnations[k] += 1
        let incarnation = incarnations[k]
        let configuration = RaftConfiguration(
            id: NodeID(UInt64(k + 1)), voters: (1...size).map { NodeID(UInt64($0)) },
            electionTimeoutTicksMin: raftOptions.electionMin, electionTimeoutTicksMax: raftOptions.electionMax,
            appendEntriesCountMax: 8, appendBytesMax: 2048)
        do {
            let engine = try ReplicaEngine<Int>(
                group: Self.group, configuration: configuration, directory: Self.directory, logConfig: logConfig,
                io: disks[k], transport: links[k],
                flush: { [unowned self] request in
                    self.flushes.append(
                        PendingFlush(
                            at: self.now + (self.slowFlushes[k] ?? self.uniform(0...self.flushDelayTicksMax)), node: k,
                            incarnation: incarnation, request: request))
                },
                seed: seed &* 1000 &+ UInt64(k * 10 + incarnation), now: millis)
            engine.onCommitOutcomes = { [unowned self] outcomes in
                for outcome in outcomes { self.outcomes[outcome.token] = outcome.result }
            }
            engines[k] = engine
        } catch {
            XCTFail("seed \(seed): node \(k + 1) cannot open: \(error)")
        }
    }

    /// Power loss on node k: the engine is gone, the disk keeps only what was synced.
    func crash(_ k: Int) {
        engines[k] = nil
        incarnations[k] += 1
        disks[k].crash()
        links[k].coalescer = HeartbeatCoalescer()
        trace.append("t=\(now) n\(k + 1) crashes")
    }

    func transmit(_ frame: PeerFrame, from: Int) {
        let to: Int
        switch frame {
        case .message(let envelope): to = Int(envelope.message.to.value) - 1
        case .heartbeats(let beats): to = Int(beats.to.value) - 1
        case .rpc(let call): to = Int(call.to.value) - 1
        }
        if blocked[from][to] || chance(lossPercent) { return }
        var bytes = ByteBuffer()
        ReplicationCodec.encode(frame, into: &bytes)
        sequence += 1
        network.append(
            InFlight(at: now + uniform(1...delayTicksMax), sequence: sequence, from: from, to: to, bytes: bytes))
    }

    /// One tick: engines tick, coalesced heartbeats leave, due messages arrive, due flushes complete.
    func advance() {
        for k in 0..<size { engines[k]?.tick(now: millis) }
        for k in 0..<size { for frame in links[k].coalescer.flush() { transmit(frame, from: k) } }
        let due = network.filter { $0.at <= now }.sorted { ($0.at, $0.sequence) < ($1.at, $1.sequence) }
        network.removeAll { $0.at <= now }
        for var message in due {
            guard let engine = engines[message.to], !blocked[message.from][message.to] else { continue }
            let frame: PeerFrame?
            do {
                frame = try ReplicationCodec.decodeFrame(from: &message.bytes)
            } catch {
                XCTFail("seed \(seed): a frame the codec wrote does not decode: \(error)")
                continue
            }
            switch frame {
            case .message(let envelope)?:
                XCTAssertEqual(envelope.group, Self.group)
                engine.receive(envelope.message, now: millis)
            case .heartbeats(let beats)?:
                for envelope in beats.split() { engine.receive(envelope.message, now: millis) }
            case .rpc?:
                XCTFail("seed \(seed): replicas send no requests between brokers")
            case nil:
                XCTFail("seed \(seed): incomplete frame")
            }
        }
        let ready = flushes.filter { $0.at <= now }
        flushes.removeAll { $0.at <= now }
        for flush in ready {
            guard flush.incarnation == incarnations[flush.node], let engine = engines[flush.node] else { continue }
            var failure: FileIOError?
            do throws(FileIOError) {
                try flush.request.plan.execute(io: disks[flush.node])
            } catch {
                failure = error
            }
            engine.completeFlush(flush.request, error: failure)
        }
        now += 1
    }

    func run(ticks: Int) { for _ in 0..<ticks { advance() } }

    /// Runs until `condition` holds, at most `ticks` ticks; false if it never did.
    @discardableResult
    func run(until condition: () -> Bool, ticks: Int = 500) -> Bool {
        for _ in 0..<ticks {
            if condition() { return true }
            advance()
        }
        return condition()
    }

    var leader: Int? {
        var best: Int?
        for k in 0..<size {
            guard let engine = engines[k], engine.isLeader else { continue }
            if best == nil || engine.term > engines[best!]!.term { best = k }
        }
        return best
    }

    func waitForLeader(ticks: Int = 500) -> Int? {
        run(until: { leader != nil }, ticks: ticks)
        return leader
    }

    func heal() {
        blocked = Array(repeating: Array(repeating: false, count: size), count: size)
        lossPercent = 0
    }

    func isolate(_ k: Int) {
        for other in 0..<size where other != k {
            blocked[k][other] = true
            blocked[other][k] = true
        }
    }

    /// Every live replica holds the same log up to the same commit index, and that is the whole log.
    var converged: Bool {
        let live = engines.compactMap { $0 }
        guard live.count == size, let first = live.first else { return false }
        return live.allSatisfy {
            $0.commitIndex == first.commitIndex && $0.log.logEndOffset == first.log.logEndOffset
                && $0.commitIndex.value == $0.log.logEndOffset.value - 1 && $0.waitingForFlush == false
        }
    }

    /// The bytes of every batch from `offset` to the end of node k's log.
    func logBytes(_ k: Int, from offset: Offset? = nil) throws -> [UInt8] {
        guard let log = engines[k]?.log else { return [] }
        let start = offset ?? log.logStartOffset
        guard start < log.logEndOffset else { return [] }
        let read = try log.readVerified(from: start, maxBytes: Int.max / 2)
        return Array(read.bytes.readableBytesView)
    }

    /// Every batch of node k's log: (base offset, epoch, control?, record values).
    func batches(_ k: Int) throws -> [(offset: Int64, epoch: Int32, control: Bool, values: [String])] {
        var bytes = ByteBuffer(bytes: try logBytes(k))
        var result: [(Int64, Int32, Bool, [String])] = []
        while bytes.readableBytes > 0 {
            let header = try RecordBatchHeader.read(from: bytes, at: bytes.readerIndex)
            let records = try RecordBatch.records(of: bytes)
            let values = records.map { $0.value.map { String(buffer: $0) } ?? "" }
            result.append((header.baseOffset, header.partitionLeaderEpoch, header.attributes.isControl, values))
            bytes.moveReaderIndex(forwardBy: header.totalSize)
        }
        return result
    }
}

/// A producer's batch of `records` records whose values are `"<tag>/<r>"`.
func makeBatch(_ tag: String, records: Int = 2) throws -> ByteBuffer {
    var builder = RecordBatchBuilder(baseTimestamp: 1_700_000_000_000)
    for r in 0..<records {
        builder.append(timestamp: 1_700_000_000_000, key: nil, value: ByteBuffer(string: "\(tag)/\(r)"))
    }
    return try builder.build()
}
