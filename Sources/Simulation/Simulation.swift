// Simulation: a seeded, deterministic world of N Raft nodes around the real Raft core.
//
// What it owns: a simulated clock (ticks), a network that loses, delays, duplicates and reorders messages and
// that partitions (both ways or one way) and heals, a disk that makes writes durable only after a random fsync
// delay, crashes that keep only what was durable, retention that removes committed log prefixes, and clients
// that propose batches of 1 to 5 records. After every step it checks Raft's safety invariants; at the end of
// each run it heals everything and requires that a leader emerges and a new batch commits on every node.
//
// What it must never do: read the wall clock, draw unseeded randomness, or iterate a Dictionary or Set (their
// order changes from process to process): the same seed must replay the same run exactly.
//
// Main types: `Simulation` (run one seed), `SimulationOptions`, `SimulationResult`, `SimLog`, `SimPayload`.
import Raft

/// Knobs of one simulation run. Percentages are per message or per tick, as named.
public struct SimulationOptions: Sendable {
    /// Nodes in the group: 3 or 5.
    public var nodeCount = 3
    /// Ticks of the faulty phase.
    public var faultTicks = 400
    /// Ticks the liveness phase may take to elect a leader and commit a new batch on every node, plus 9 ticks (one
    /// slow round trip) per window of appends that the most lagging node lacks when the phase starts.
    public var livenessTicksMax = 400
    /// When set, each seed draws every fault rate and delay below uniformly from zero (or one) up to the value
    /// given, so that a budget of seeds covers calm and stormy runs alike.
    public var varyFaultsPerSeed = true
    /// Chance that a message is lost.
    public var lossPercentPerMessage = 20
    /// Chance that a message is delivered twice.
    public var duplicatePercentPerMessage = 10
    /// Network delay of a message: 1 to this many ticks (so messages overtake each other).
    public var delayTicksMax = 12
    /// Delay of an fsync: 0 to this many ticks.
    public var fsyncDelayTicksMax = 8
    /// Chance per tick that an up node crashes.
    public var crashPercentPerTick = 5
    /// Ticks a crashed node stays down: 1 to this many.
    public var downTicksMax = 60
    /// Chance per tick that the network changes (a new partition, a one-way cut, or healing).
    public var partitionPercentPerTick = 10
    /// Chance per tick that a client proposes a batch to some node.
    public var proposePercentPerTick = 40
    /// Chance per tick that a leader is asked to transfer its leadership.
    public var transferPercentPerTick = 1
    /// Chance per tick that retention removes a committed prefix of some node's log.
    public var retentionPercentPerTick = 4
    /// Window of in-flight appends per follower given to every node.
    public var inflightAppendsMax = 3

    /// Defaults for `nodeCount` nodes.
    public init(nodeCount: Int = 3) { self.nodeCount = nodeCount }
}

/// What one run did.
public struct SimulationResult: Sendable {
    /// The seed that replays it.
    public var seed: UInt64
    /// Ticks simulated (both phases).
    public var ticks = 0
    /// Times a node became leader.
    public var elections = 0
    /// Distinct batches committed.
    public var commits = 0
    /// Ticks from the start of the liveness phase until a leader was known.
    public var ticksToElect = 0
    /// Ticks from the start of the liveness phase until a new batch was committed on every node.
    public var ticksToCommitEverywhere = 0
    /// The broken invariant or the liveness failure, if any.
    public var failure: String?
}

/// Runs seeds.
public enum Simulation {
    /// Runs one seed; `trace` receives a line per event when given (it costs time).
    public static func run(
        seed: UInt64, options: SimulationOptions, trace: ((String) -> Void)? = nil
    ) -> SimulationResult {
        let world = World(seed: seed, options: options, trace: trace)
        world.run()
        return world.result
    }

    /// Runs one seed again and returns the last `count` lines of its trace (for a failing seed).
    public static func traceTail(seed: UInt64, options: SimulationOptions, count: Int) -> [String] {
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

/// A broken invariant; stops the run.
struct InvariantViolation: Error {
    var message: String
}

/// One node of the world: the core, its disk, and what the checkers remember about it.
final class SimNode {
    let id: NodeID
    var raft: RaftNode<SimPayload>?
    /// The log as written (page cache): what the core reads.
    var log = SimLog()
    /// The log as fsynced: what survives a crash.
    var durableLog = SimLog()
    var durableHardState = HardState.initial
    /// Bumped at every crash, so that events of a former life are ignored.
    var incarnation = 0
    var syncPending = false
    var restartAt: Int?
    /// The commit index seen last in this life, to check that it never moves back.
    var commitIndex = LogIndex.none
    /// The role last written to the trace.
    var tracedRole = ""

    init(id: NodeID) { self.id = id }
}

/// Something that happens at a tick.
enum Event {
    case deliver(Message<SimPayload>)
    case sync(node: Int, incarnation: Int)
}

/// A min-heap of events by (tick, sequence number): ties keep their scheduling order.
struct EventQueue {
    private var heap: [(time: Int, seq: Int, event: Event)] = []
    private var seq = 0

    var isEmpty: Bool { heap.isEmpty }
    var nextTime: Int? { heap.first?.time }

    mutating func push(_ event: Event, at time: Int) {
        seq += 1
        heap.append((time, seq, event))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard before(child, parent) else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Event {
        let top = heap[0].event
        heap.swapAt(0, heap.count - 1)
        heap.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < heap.count && before(left, smallest) { smallest = left }
            if right < heap.count && before(right, smallest) { smallest = right }
            guard smallest != parent else { break }
            heap.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }

    private func before(_ a: Int, _ b: Int) -> Bool {
        (heap[a].time, heap[a].seq) < (heap[b].time, heap[b].seq)
    }
}
