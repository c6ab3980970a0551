// The broker world's machinery: nodes (loop, executor, disk, clock, transport, logger), the network, faults
// and the phases of a run. Clients are in BrokerClients.swift, the checks in BrokerChecks.swift.
//
// Everything runs on the calling thread: the world, every node's `EmbeddedEventLoop`, the blocking jobs. That
// is why the seams below are `@unchecked Sendable`: nothing here is ever touched from two threads.
import Broker
import Glibc
import KafkaProtocol
import LogStorage
import Logging
import NIOCore
import NIOEmbedded
import Raft
import Replication

/// The `SimulatedDisk` behind the broker's `FileIO & Sendable` seam.
final class SimDiskIO: FileIO, @unchecked Sendable {
    let disk: SimulatedDisk

    init(_ disk: SimulatedDisk) { self.disk = disk }

    func open(_ path: String, mode: FileOpenMode) throws(FileIOError) -> IOHandle { try disk.open(path, mode: mode) }
    func read(_ file: IOHandle, at position: FilePosition, count: Int, into buffer: inout ByteBuffer)
        throws(FileIOError) -> Int
    { try disk.read(file, at: position, count: count, into: &buffer) }
    func write(_ file: IOHandle, at position: FilePosition, from buffer: ByteBuffer) throws(FileIOError) {
        try disk.write(file, at: position, from: buffer)
    }
    func sync(_ file: IOHandle) throws(FileIOError) { try disk.sync(file) }
    func truncate(_ file: IOHandle, to size: ByteCount) throws(FileIOError) { try disk.truncate(file, to: size) }
    func size(of file: IOHandle) throws(FileIOError) -> ByteCount { try disk.size(of: file) }
    func close(_ file: IOHandle) { disk.close(file) }
    func listDirectory(_ path: String) throws(FileIOError) -> [String] { try disk.listDirectory(path) }
    func makeDirectory(_ path: String) throws(FileIOError) { try disk.makeDirectory(path) }
    func remove(_ path: String) throws(FileIOError) { try disk.remove(path) }
    func rename(_ path: String, to newPath: String) throws(FileIOError) { try disk.rename(path, to: newPath) }
    func syncDirectory(_ path: String) throws(FileIOError) { try disk.syncDirectory(path) }

    /// Removes `directory` and every file in it, durably (the broker's `removeDirectory` seam).
    func removeDirectory(_ directory: String) throws {
        try disk.change(.remove, directory)
        let prefix = directory + "/"
        for name in disk.entries.keys.sorted() where name.hasPrefix(prefix) { disk.entries[name] = nil }
        for name in disk.durableEntries.keys.sorted() where name.hasPrefix(prefix) { disk.durableEntries[name] = nil }
        for name in disk.directories.sorted() where name == directory || name.hasPrefix(prefix) {
            disk.directories.remove(name)
        }
    }
}

/// A node's clock: the world's epoch plus its loop's time (every live loop is at the world's time).
struct SimClock: BrokerClock {
    static let epochMs: Int64 = 1_700_000_000_000
    let loop: EmbeddedEventLoop

    func now() -> Milliseconds { Milliseconds(Self.epochMs + Int64(loop.now.uptimeNanoseconds / 1_000_000)) }
}

/// A node's blocking pool: each job completes after a seeded delay, when the world runs it.
final class SimExecutor: BlockingExecutor, @unchecked Sendable {
    struct Job {
        var dueMs: Int64
        var sequence: Int
        var run: () -> Void
    }

    unowned let world: BrokerWorld
    var jobs: [Job] = []

    init(world: BrokerWorld) { self.world = world }

    func run<Value: Sendable>(on loop: any EventLoop, _ work: @escaping @Sendable () throws -> Value)
        -> EventLoopFuture<Value>
    {
        let promise = loop.makePromise(of: Value.self)
        world.sequence += 1
        let delay = world.options.stepMs * Int64(world.uniform(1...max(1, world.rates.fsyncDelayStepsMax)))
        jobs.append(
            Job(dueMs: world.nowMs + delay, sequence: world.sequence) { promise.completeWith(Result { try work() }) })
        return promise.futureResult
    }

    /// Runs the jobs due by `nowMs` (or all of them), oldest first, including jobs they start that are due too.
    func runDue(nowMs: Int64?) {
        while true {
            let due = jobs.indices.filter { nowMs == nil || jobs[$0].dueMs <= nowMs! }
            guard let next = due.min(by: { (jobs[$0].dueMs, jobs[$0].sequence) < (jobs[$1].dueMs, jobs[$1].sequence) })
            else { return }
            let job = jobs.remove(at: next)
            job.run()
        }
    }
}

/// A node's links to its peers: frames go onto the world's network, encoded.
final class SimTransport: PeerTransport, @unchecked Sendable {
    unowned let world: BrokerWorld
    let node: Int
    let incarnation: Int

    init(world: BrokerWorld, node: Int, incarnation: Int) {
        self.world = world
        self.node = node
        self.incarnation = incarnation
    }

    func send(_ frame: PeerFrame, to peer: NodeID) {
        world.transmit(frame, from: node, incarnation: incarnation, to: peer)
    }

    func isConnected(to peer: NodeID) -> Bool { world.isConnected(from: node, to: Int(peer.value) - 1) }
}

/// Broker log lines into the world's trace, stamped with the world time and the node.
struct SimLogHandler: LogHandler {
    unowned let world: BrokerWorld
    let node: Int32
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let tags = all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        world.log("n\(node) \(event.level): \(event.message)\(tags.isEmpty ? "" : " [\(tags)]")")
    }
}

extension SimLogHandler: @unchecked Sendable {}

/// One node of the world: its disk outlives its lives.
final class BrokerNode {
    /// A running life of the node.
    final class Life {
        let loop: EmbeddedEventLoop
        let executor: SimExecutor
        let broker: Broker
        /// Set while a graceful stop runs.
        var stopping = false
        /// Set when the graceful stop has handed the leaderships away: the world stops the node after the step.
        var stopRequested = false

        init(loop: EmbeddedEventLoop, executor: SimExecutor, broker: Broker) {
            self.loop = loop
            self.executor = executor
            self.broker = broker
        }
    }

    let index: Int
    let disk = SimulatedDisk()
    let io: SimDiskIO
    /// Bumped at every start and every stop, so that frames and answers of a former life are dropped.
    var incarnation = 0
    var life: Life?
    /// When a node that is down starts again.
    var restartAtMs: Int64?

    init(index: Int) {
        self.index = index
        io = SimDiskIO(disk)
    }

    var id: Int32 { Int32(index + 1) }
    var isUp: Bool { life != nil }
}

/// A frame on the network.
struct SimFrame {
    var dueMs: Int64
    var sequence: Int
    var from: Int
    var to: Int
    var fromIncarnation: Int
    var toIncarnation: Int
    var bytes: ByteBuffer
}

/// The rates of one run (drawn per seed when the options vary them).
struct SimRates {
    var lossPercent: Int
    var duplicatePercent: Int
    var delayStepsMax: Int
    var fsyncDelayStepsMax: Int
    var crashPer10k: Int
    var partitionPer10k: Int
    /// Frames on a link arrive in the order sent (TCP); otherwise delays reorder them.
    var fifoLinks: Bool
}

/// The broker world of one seed.
final class BrokerWorld: @unchecked Sendable {
    static let topic = "events"
    static let scratchTopic = "scratch"

    let seed: UInt64
    let options: BrokerSimulationOptions
    let traceSink: ((String) -> Void)?
    var random: SeededRandom
    var rates: SimRates
    var result: BrokerSimulationResult
    var nowMs: Int64 = 0
    var sequence = 0
    var nodes: [BrokerNode] = []
    var network: [SimFrame] = []
    /// The due time of the last frame queued on each link (FIFO links).
    var lastDueMs: [Int64]
    /// `blocked[from * n + to]`: frames on that link are dropped.
    var blocked: [Bool]
    /// When the current split heals.
    var healAtMs: Int64?
    var faultsOn = true
    /// A violation found inside a callback, thrown at the end of the step.
    var pendingFailure: String?

    // Clients (BrokerClients.swift) and checkers (BrokerChecks.swift).
    var clients: SimClients!
    var checks = SimChecks()

    init(seed: UInt64, options: BrokerSimulationOptions, trace: ((String) -> Void)?) {
        precondition(options.nodeCount == 3 || options.nodeCount == 5, "3 or 5 nodes")
        self.seed = seed
        self.options = options
        self.traceSink = trace
        random = SeededRandom(seed: seed &* 0x2545_F491_4F6C_DD1D ^ 0xB20C_E55E)
        result = BrokerSimulationResult(seed: seed)
        rates = SimRates(
            lossPercent: options.lossPercentPerFrame, duplicatePercent: options.duplicatePercentPerFrame,
            delayStepsMax: options.delayStepsMax, fsyncDelayStepsMax: options.fsyncDelayStepsMax,
            crashPer10k: options.crashPer10kSteps, partitionPer10k: options.partitionPer10kSteps, fifoLinks: false)
        let n = options.nodeCount
        lastDueMs = Array(repeating: 0, count: n * n)
        blocked = Array(repeating: false, count: n * n)
        if options.varyFaultsPerSeed {
            rates.lossPercent = uniform(0...options.lossPercentPerFrame)
            rates.duplicatePercent = uniform(0...options.duplicatePercentPerFrame)
            rates.delayStepsMax = uniform(1...max(1, options.delayStepsMax))
            rates.fsyncDelayStepsMax = uniform(1...max(1, options.fsyncDelayStepsMax))
            rates.crashPer10k = uniform(0...options.crashPer10kSteps)
            rates.partitionPer10k = uniform(0...options.partitionPer10kSteps)
            rates.fifoLinks = chance(50)
        }
        nodes = (0..<n).map { BrokerNode(index: $0) }
        clients = SimClients(world: self)
    }

    // MARK: Randomness and the trace

    func chance(_ percent: Int) -> Bool { percent > 0 && Int(random.next() % 100) < percent }
    func chance(per10k: Int) -> Bool { per10k > 0 && Int(random.next() % 10_000) < per10k }
    func uniform(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(random.next() % UInt64(range.count)) }

    var isTracing: Bool { traceSink != nil }

    func log(_ line: @autoclosure () -> String) {
        guard let traceSink else { return }
        traceSink("t=\(nowMs) \(line())")
    }

    /// Notes a violation found where it cannot be thrown (a callback); the step throws it.
    func fail(_ message: String) {
        if pendingFailure == nil { pendingFailure = message }
    }

    // MARK: A run

    func run() {
        log(
            "seed \(seed): \(options.nodeCount) nodes, loss \(rates.lossPercent)%, duplicates "
                + "\(rates.duplicatePercent)%, delay 1...\(rates.delayStepsMax) steps, fsync 1..."
                + "\(rates.fsyncDelayStepsMax) steps, crashes \(rates.crashPer10k)/10k steps, splits "
                + "\(rates.partitionPer10k)/10k steps, \(rates.fifoLinks ? "FIFO" : "reordering") links")
        do throws(InvariantViolation) {
            for node in nodes { start(node) }
            while nowMs < options.faultMs { try step() }
            try livenessPhase()
            try checks.finalCheck(self)
        } catch {
            result.failure = "at t=\(nowMs) ms: \(error.message)"
            log("FAILED: \(error.message)")
        }
        result.worldMs = nowMs
        result.elections = checks.leaderCount
        // Every node stops, so that no promise of any life is left behind.
        for node in nodes where node.isUp { stop(node, powerLoss: false) }
    }

    /// One step: every node's frames, blocking jobs and loop (in node order), then the clients, the faults, the
    /// checks.
    func step() throws(InvariantViolation) {
        nowMs += options.stepMs
        for node in nodes {
            if node.life == nil, let at = node.restartAtMs, at <= nowMs { start(node) }
            guard let life = node.life else { continue }
            deliverDue(to: node)
            life.executor.runDue(nowMs: nowMs)
            life.loop.advanceTime(to: .uptimeNanoseconds(UInt64(nowMs) * 1_000_000))
        }
        for node in nodes where node.life?.stopRequested == true { stop(node, powerLoss: false) }
        clients.step()
        if faultsOn { injectFaults() }
        if let failure = pendingFailure { throw InvariantViolation(message: failure) }
        try checks.check(self)
    }

    // MARK: Nodes

    func start(_ node: BrokerNode) {
        node.incarnation += 1
        node.restartAtMs = nil
        let loop = EmbeddedEventLoop()
        loop.advanceTime(to: .uptimeNanoseconds(UInt64(nowMs) * 1_000_000))
        let executor = SimExecutor(world: self)
        let io = node.io
        let environment = BrokerEnvironment(
            clock: SimClock(loop: loop), blocking: executor, fileIO: io,
            peers: SimTransport(world: self, node: node.index, incarnation: node.incarnation), seed: random.next(),
            removeDirectory: { try io.removeDirectory($0) })
        let config = BrokerConfig(
            nodeId: node.id, advertisedHost: "node\(node.id)", advertisedPort: 9092, dataDirectory: "/data",
            autoCreateTopics: false, clusterId: "sim", voters: nodes.map(\.id), clusterHost: "node\(node.id)",
            clusterPort: 19092)
        let world = self
        let id = node.id
        let logger = Logger(label: "n\(id)") { _ in
            SimLogHandler(world: world, node: id, logLevel: world.isTracing ? .info : .critical)
        }
        try? node.disk.makeDirectory("/data")
        let broker = Broker(config: config, environment: environment, group: loop, logger: logger)
        node.life = BrokerNode.Life(loop: loop, executor: executor, broker: broker)
        log("n\(node.id) starts (life \(node.incarnation))")
        let incarnation = node.incarnation
        broker.start().assumeIsolated().whenFailure { error in
            guard node.incarnation == incarnation else { return }
            world.fail("n\(id) did not start: \(error)")
        }
        checks.nodeStarted(node)
    }

    /// Stops a node at once. With `powerLoss`, every disk operation fails from now on and only what was fsynced
    /// survives; otherwise the broker shuts down cleanly. Either way its loop and blocking jobs run until the
    /// shutdown completes, and then far enough ahead that every timer of that life fires, so that no promise
    /// is left incomplete.
    func stop(_ node: BrokerNode, powerLoss: Bool) {
        guard let life = node.life else { return }
        node.incarnation += 1
        node.life = nil
        if powerLoss { node.disk.operationsLeft = 0 }
        let closed = life.broker.shutdown()
        var done = false
        closed.assumeIsolated().whenComplete { _ in done = true }
        var rounds = 0
        while !done, rounds < 10_000 {
            life.executor.runDue(nowMs: nil)
            life.loop.run()
            rounds += 1
        }
        precondition(done, "n\(node.id): shutdown did not complete")
        // Timers of the dead life (request timeouts, polls) fire now, into a broker that refuses everything.
        var ahead = life.loop.now.uptimeNanoseconds
        for _ in 0..<200 {
            ahead += 1_000_000_000
            life.loop.advanceTime(to: .uptimeNanoseconds(ahead))
            life.executor.runDue(nowMs: nil)
        }
        life.loop.run()
        try? life.loop.syncShutdownGracefully()
        if powerLoss {
            node.disk.crash()
            node.disk.operationsLeft = nil
        }
        // Frames from or to the dead life never arrive (its connections are gone).
        network.removeAll { $0.from == node.index || $0.to == node.index }
        log("n\(node.id) \(powerLoss ? "loses power" : "stopped")")
    }

    // MARK: The network

    func isConnected(from: Int, to: Int) -> Bool {
        let n = nodes.count
        guard to >= 0, to < n, to != from, nodes[to].isUp, nodes[from].isUp else { return false }
        return !blocked[from * n + to] && !blocked[to * n + from]
    }

    func transmit(_ frame: PeerFrame, from: Int, incarnation: Int, to peer: NodeID) {
        let n = nodes.count
        let to = Int(peer.value) - 1
        guard nodes[from].incarnation == incarnation, to >= 0, to < n, to != from, nodes[to].isUp else { return }
        result.frames += 1
        guard !blocked[from * n + to], !chance(rates.lossPercent) else { return }
        var bytes = ByteBuffer()
        ReplicationCodec.encode(frame, into: &bytes)
        result.mix(nowMs)
        result.mix(Int64(from * n + to))
        result.mix(bytes.readableBytesView)
        let copies = chance(rates.duplicatePercent) ? 2 : 1
        for _ in 0..<copies {
            var due = nowMs + options.stepMs * Int64(uniform(1...rates.delayStepsMax))
            if rates.fifoLinks { due = max(due, lastDueMs[from * n + to]) }
            lastDueMs[from * n + to] = due
            sequence += 1
            network.append(
                SimFrame(
                    dueMs: due, sequence: sequence, from: from, to: to, fromIncarnation: incarnation,
                    toIncarnation: nodes[to].incarnation, bytes: bytes))
        }
    }

    /// Hands a node the frames due for it: decoded, in (due, sent) order, consecutive frames of one sender in one
    /// `deliver` (one socket read).
    func deliverDue(to node: BrokerNode) {
        guard let life = node.life else { return }
        let n = nodes.count
        var due: [SimFrame] = []
        network.removeAll { frame in
            guard frame.to == node.index, frame.dueMs <= nowMs else { return false }
            due.append(frame)
            return true
        }
        due.sort { ($0.dueMs, $0.sequence) < ($1.dueMs, $1.sequence) }
        var batch: [PeerFrame] = []
        var batchFrom = -1
        func flush() {
            guard !batch.isEmpty else { return }
            life.broker.deliver(batch, from: NodeID(UInt64(batchFrom + 1)))
            batch = []
        }
        for var frame in due {
            guard frame.toIncarnation == node.incarnation, nodes[frame.from].incarnation == frame.fromIncarnation,
                !blocked[frame.from * n + frame.to]
            else { continue }
            let decoded: PeerFrame?
            do throws(ReplicationCodecError) {
                decoded = try ReplicationCodec.decodeFrame(from: &frame.bytes)
            } catch {
                fail("a frame the codec wrote does not decode: \(error)")
                continue
            }
            guard let decoded, frame.bytes.readableBytes == 0 else {
                fail("a frame the codec wrote decodes incompletely")
                continue
            }
            if frame.from != batchFrom { flush() }
            batchFrom = frame.from
            batch.append(decoded)
        }
        flush()
    }

    // MARK: Faults

    func injectFaults() {
        let n = nodes.count
        if let at = healAtMs, at <= nowMs {
            blocked = Array(repeating: false, count: n * n)
            healAtMs = nil
            log("the network heals")
        }
        if healAtMs == nil, chance(per10k: rates.partitionPer10k) {
            result.partitions += 1
            let victim = uniform(0...n - 1)
            switch uniform(0...2) {
            case 0:
                for other in 0..<n where other != victim {
                    blocked[victim * n + other] = true
                    blocked[other * n + victim] = true
                }
                log("split: n\(victim + 1) isolated")
            case 1:
                var other = uniform(0...n - 2)
                if other >= victim { other += 1 }
                blocked[victim * n + other] = true
                log("split: n\(victim + 1) -> n\(other + 1) cut one way")
            default:
                // A majority and a minority (the victim and, with 5 nodes, its neighbour).
                var minority = [victim]
                if n == 5 { minority.append((victim + 1) % n) }
                for a in minority {
                    for b in 0..<n where !minority.contains(b) {
                        blocked[a * n + b] = true
                        blocked[b * n + a] = true
                    }
                }
                log("split: \(minority.map { "n\($0 + 1)" }) from the rest")
            }
            healAtMs = nowMs + Int64(uniform(500...4_000))
        }
        let down = nodes.filter { !$0.isUp || $0.life?.stopping == true }.count
        if down < (n - 1) / 2, chance(per10k: rates.crashPer10k) {
            let candidates = nodes.filter { $0.isUp && $0.life?.stopping == false }
            guard !candidates.isEmpty else { return }
            let node = candidates[uniform(0...candidates.count - 1)]
            if chance(70) {
                result.crashes += 1
                stop(node, powerLoss: true)
            } else {
                gracefulStop(node)
            }
            node.restartAtMs = nowMs + Int64(uniform(200...3_000))
        }
    }

    /// A graceful stop: the node hands its leaderships away (at most 1 s), shuts down, and is down until its
    /// restart time.
    func gracefulStop(_ node: BrokerNode) {
        guard let life = node.life else { return }
        result.stops += 1
        life.stopping = true
        log("n\(node.id) stops gracefully")
        let incarnation = node.incarnation
        life.broker.transferLeadershipsAway(timeoutMs: 1_000).assumeIsolated().whenComplete { led in
            guard node.incarnation == incarnation else { return }
            self.log("n\(node.id) handed its leaderships away; still leading: \((try? led.get()) ?? [])")
            life.stopRequested = true
        }
    }

    // MARK: Liveness

    func livenessPhase() throws(InvariantViolation) {
        faultsOn = false
        let n = nodes.count
        blocked = Array(repeating: false, count: n * n)
        healAtMs = nil
        rates.lossPercent = 0
        rates.duplicatePercent = 0
        log("liveness phase: every node up, the network healed, no more faults")
        let startMs = nowMs
        clients.livenessStarted()
        let deadline = nowMs + options.livenessMsMax
        while nowMs < deadline {
            for node in nodes where !node.isUp && node.restartAtMs == nil { node.restartAtMs = nowMs }
            try step()
            if result.msToAcknowledgeAfterHealing == 0, clients.allAcknowledged {
                result.msToAcknowledgeAfterHealing = nowMs - startMs
                log("every producer's batches acknowledged")
            }
            if result.msToAcknowledgeAfterHealing > 0, nodes.allSatisfy({ $0.isUp }), checks.converged(self) {
                log("every group converged")
                return
            }
        }
        throw InvariantViolation(
            message: "liveness: within \(options.livenessMsMax) ms after healing, "
                + (clients.allAcknowledged ? "the replicas did not converge" : "not every batch was acknowledged")
                + ": " + clients.pendingDescription + "; " + checks.describeGroups(self))
    }
}
