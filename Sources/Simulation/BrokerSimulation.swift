// The broker simulation: N whole Keel brokers (3 or 5) in one seeded, deterministic world.
//
// What it owns: for every node, an `EmbeddedEventLoop` that the world advances in lockstep (node 1 first), a
// blocking executor whose jobs (fsyncs, directory removals) complete after seeded delays, a `SimulatedDisk`
// (crashes keep only what was fsynced), a clock that reads the node's loop (world time), and a `PeerTransport`
// that encodes every frame with `ReplicationCodec` onto the world's network (seeded delay, loss, duplication,
// reordering; partitions that come and heal; `isConnected` false across a cut or to a node that is down).
// Clients call `Broker.handle` and decode the encoded answers: an admin creates the topic (replication factor
// 3), idempotent producers (InitProducerId, then Produce v7 acks=-1, retrying a batch with the same sequence on
// whichever node Metadata names its leader, as librdkafka does) and a reader (Fetch and ListOffsets).
//
// After every step it checks Raft's safety properties in every group (the controller's and each partition's):
// at most one leader per term, a committed batch never changes and is the same on every replica, the commit
// index never moves back within a life, a new leader holds every batch committed in an earlier term; and what
// clients saw: the high watermark ListOffsets reports never moves back, a record read at an offset is read the
// same there every time. Each run ends with a liveness phase (every node up, the network healed, no more
// faults): every group must elect a leader, every producer's pending batch and one more per partition must be
// acknowledged, and the replicas must converge. Then every acknowledged record must be on every replica exactly
// once at its acknowledged offset, every record a reader saw must be there too, and every node must have applied
// the same metadata.
//
// What it must never do: read the wall clock, draw unseeded randomness, or let a Dictionary's or a Set's order
// decide anything (it iterates sorted keys), so that a seed replays exactly.
//
// Main types: `BrokerSimulation` (run one seed), `BrokerSimulationOptions`, `BrokerSimulationResult`.
import Raft

/// Knobs of one broker simulation run. Rates are per step (10 ms of world time) or per frame, as named.
public struct BrokerSimulationOptions: Sendable {
    /// Nodes in the cluster (every one a controller voter): 3 or 5.
    public var nodeCount = 3
    /// Partitions of the topic the admin creates (replication factor 3).
    public var partitionCount: Int32 = 2
    /// Idempotent producers, each writing every partition.
    public var producerCount = 2
    /// Batches each producer writes to each partition during the faulty phase (at most).
    public var batchesPerPartitionMax = 50
    /// Milliseconds of world time of the faulty phase.
    public var faultMs: Int64 = 16_000
    /// Milliseconds the liveness phase may take to elect, acknowledge every pending batch and converge.
    public var livenessMsMax: Int64 = 30_000
    /// Milliseconds per step: every node's loop advances this much, in node order.
    public var stepMs: Int64 = 10
    /// When set, each seed draws every rate below uniformly from zero up to the value given, and whether links
    /// keep their frames in order (as TCP does), so that a budget of seeds covers calm and stormy runs alike.
    public var varyFaultsPerSeed = true
    /// Chance (percent) that a frame between nodes is lost.
    public var lossPercentPerFrame = 5
    /// Chance (percent) that a frame is delivered twice.
    public var duplicatePercentPerFrame = 3
    /// Network delay of a frame: 1 to this many steps.
    public var delayStepsMax = 6
    /// Latency of a blocking job (an fsync): 1 to this many steps.
    public var fsyncDelayStepsMax = 4
    /// Chance per step, in parts per ten thousand, that a node crashes (power loss, or a graceful stop).
    public var crashPer10kSteps = 30
    /// Chance (percent) per seed that a consumer commits offsets in a group (its `__consumer_offsets` topic of 16
    /// partitions makes the run slower).
    public var consumerGroupPercent = 25
    /// Chance per step, in parts per ten thousand, that the network splits.
    public var partitionPer10kSteps = 40

    /// Defaults for `nodeCount` nodes.
    public init(nodeCount: Int = 3) { self.nodeCount = nodeCount }
}

/// What one run did.
public struct BrokerSimulationResult: Sendable {
    /// The seed that replays it.
    public var seed: UInt64
    /// Milliseconds of world time simulated.
    public var worldMs: Int64 = 0
    /// Distinct (group, term) leaderships seen.
    public var elections = 0
    /// Power losses.
    public var crashes = 0
    /// Graceful stops (leaderships handed away, then `shutdown`).
    public var stops = 0
    /// Network splits.
    public var partitions = 0
    /// Batches acknowledged to producers.
    public var acknowledgedBatches = 0
    /// Records acknowledged to producers.
    public var acknowledgedRecords = 0
    /// Records a reader fetched.
    public var recordsRead = 0
    /// Frames sent between nodes.
    public var frames = 0
    /// Milliseconds from the start of the liveness phase until every producer's batches were acknowledged.
    public var msToAcknowledgeAfterHealing: Int64 = 0
    /// FNV-1a over every frame sent (time, link, bytes) and every answer a client decoded: two runs of a seed
    /// replay exactly when their digests agree.
    public var digest: UInt64 = 0xcbf2_9ce4_8422_2325
    /// The broken invariant or the liveness failure, if any.
    public var failure: String?

    /// Mixes bytes into the digest.
    mutating func mix<Bytes: Sequence<UInt8>>(_ bytes: Bytes) {
        for byte in bytes { digest = (digest ^ UInt64(byte)) &* 0x100_0000_01b3 }
    }

    /// Mixes a number into the digest.
    mutating func mix(_ number: Int64) {
        withUnsafeBytes(of: number.littleEndian) { mix($0) }
    }
}

/// Runs seeds of the broker world.
public enum BrokerSimulation {
    /// Runs one seed; `trace` receives a line per event (and every broker log line) when given.
    public static func run(
        seed: UInt64, options: BrokerSimulationOptions, trace: ((String) -> Void)? = nil
    ) -> BrokerSimulationResult {
        let world = BrokerWorld(seed: seed, options: options, trace: trace)
        world.run()
        return world.result
    }

    /// Runs one seed again and returns the last `count` lines of its trace (for a failing seed).
    public static func traceTail(seed: UInt64, options: BrokerSimulationOptions, count: Int) -> [String] {
        var ring: [String] = []
        ring.reserveCapacity(count)
        var next = 0
        _ = run(seed: seed, options: options) { line in
            if ring.count < count { ring.append(line) } else { ring[next] = line }
            next = (next + 1) % count
        }
        return ring.count < count ? ring : Array(ring[next...] + ring[..<next])
    }
}
