// Distinct numbers of the Raft core, the entry that carries a batch, and the configuration.

/// A Raft term. Term zero means "no term yet"; every entry has a term of at least one.
public struct Term: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The raw number; the batch's `partitionLeaderEpoch` on the wire.
    public var value: UInt64

    /// Wraps a raw term number.
    public init(_ value: UInt64) { self.value = value }

    /// The term before any election.
    public static let zero = Term(0)

    /// The largest term a node takes: terms travel as a Kafka batch's Int32 `partitionLeaderEpoch`. A message
    /// naming a larger one is dropped, and a node in this term no longer campaigns (2^31 elections never happen;
    /// only a broken peer could bring a group here).
    public static let max = Term(UInt64(Int32.max))

    /// The term after this one.
    public var next: Term { Term(value + 1) }

    /// Orders terms by number.
    public static func < (lhs: Term, rhs: Term) -> Bool { lhs.value < rhs.value }

    /// The plain number.
    public var description: String { String(value) }
}

/// The identity of one replica (one node) in a Raft group.
public struct NodeID: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The raw node id, as given by `--id`.
    public var value: UInt64

    /// Wraps a raw node id.
    public init(_ value: UInt64) { self.value = value }

    /// Orders node ids by number, so that iteration over voters is deterministic.
    public static func < (lhs: NodeID, rhs: NodeID) -> Bool { lhs.value < rhs.value }

    /// The plain number.
    public var description: String { String(value) }
}

/// A position in the log: a Kafka offset. An entry is named by its last index.
///
/// Offsets start at 0, so `LogIndex(-1)` (`.none`) is the position before the first record of a fresh log.
public struct LogIndex: Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The raw offset.
    public var value: Int64

    /// Wraps a raw offset.
    public init(_ value: Int64) { self.value = value }

    /// The position before offset 0: the last index of an empty fresh log, the commit index of a fresh node.
    public static let none = LogIndex(-1)

    /// The largest index a message may name: far beyond any real log, and small enough that index arithmetic
    /// (`+ 1`, `+ recordCount`) never overflows. A message naming a larger one is dropped.
    public static let max = LogIndex(Int64.max / 4)

    /// Orders positions.
    public static func < (lhs: LogIndex, rhs: LogIndex) -> Bool { lhs.value < rhs.value }

    /// The position `count` records later.
    public static func + (lhs: LogIndex, count: Int64) -> LogIndex { LogIndex(lhs.value + count) }

    /// The position `count` records earlier.
    public static func - (lhs: LogIndex, count: Int64) -> LogIndex { LogIndex(lhs.value - count) }

    /// The plain offset.
    public var description: String { String(value) }
}

/// What the core needs to know about an opaque entry payload (in Keel, a Kafka record batch).
public protocol RaftPayload: Sendable {
    /// Records in the payload; the entry covers this many consecutive indexes. At least one.
    var recordCount: Int { get }
    /// Size on the wire, for the per-message byte limits.
    var byteCount: Int { get }
}

/// What an entry holds: the shell's payload, or the one no-op a new leader may append.
public enum EntryContent<Payload: RaftPayload>: Sendable {
    /// A proposed payload.
    case data(Payload)
    /// A newly elected leader's no-op, appended only over an uncommitted tail; the shell writes it as a Kafka
    /// LEADER_CHANGE control batch. It covers one index.
    case leaderChange
}

/// One Raft log entry: a batch covering the index range `firstIndex...lastIndex`, written in `term`.
///
/// The entry's Raft index is `lastIndex`; the next entry starts at `lastIndex + 1` (no gaps).
public struct Entry<Payload: RaftPayload>: Sendable {
    /// The term of the leader that created it (the batch's `partitionLeaderEpoch`).
    public var term: Term
    /// Its first index (the batch's base offset).
    public var firstIndex: LogIndex
    /// Its last index (the batch's last offset): the entry's Raft index.
    public var lastIndex: LogIndex
    /// The payload or the leader-change no-op.
    public var content: EntryContent<Payload>

    /// Builds an entry; the range must be non-empty.
    public init(term: Term, firstIndex: LogIndex, lastIndex: LogIndex, content: EntryContent<Payload>) {
        precondition(firstIndex <= lastIndex, "an entry covers at least one index")
        precondition(firstIndex >= .zero, "offsets start at 0")
        self.term = term
        self.firstIndex = firstIndex
        self.lastIndex = lastIndex
        self.content = content
    }

    /// Indexes (records) covered.
    public var recordCount: Int64 { lastIndex.value - firstIndex.value + 1 }

    /// Bytes counted against the append limits; a leader-change batch counts as a small control batch.
    public var byteCount: Int {
        switch content {
        case .data(let payload): return payload.byteCount
        case .leaderChange: return Entry.leaderChangeByteCount
        }
    }

    /// The approximate size of a LEADER_CHANGE control batch: a batch header plus one small record.
    public static var leaderChangeByteCount: Int { 80 }
}

extension LogIndex {
    /// Offset 0: the first index of a fresh log.
    public static let zero = LogIndex(0)
}

/// The state that must be durable before any message that depends on it is sent.
public struct HardState: Hashable, Sendable {
    /// The current term.
    public var term: Term
    /// Whom this node voted for in `term`, if anyone.
    public var votedFor: NodeID?

    /// Builds a hard state.
    public init(term: Term, votedFor: NodeID?) {
        self.term = term
        self.votedFor = votedFor
    }

    /// The state of a node that has never voted.
    public static let initial = HardState(term: .zero, votedFor: nil)
}

/// The limits and timings of one Raft node. Units are in the names.
public struct RaftConfiguration: Sendable {
    /// This node.
    public var id: NodeID
    /// The voters of the group, this node included; sorted and unique (a set, kept as an array so that every
    /// iteration is deterministic; membership changes will replace it).
    public var voters: [NodeID]
    /// Lower bound of the randomized election timeout; also the check-quorum period and the leader lease.
    public var electionTimeoutTicksMin: Int
    /// Upper bound (exclusive) of the randomized election timeout.
    public var electionTimeoutTicksMax: Int
    /// Ticks between two heartbeats of a leader.
    public var heartbeatIntervalTicks: Int
    /// Entries per AppendEntries message, at most.
    public var appendEntriesCountMax: Int
    /// Payload bytes per AppendEntries message, at most (one entry is always sent, whatever its size).
    public var appendBytesMax: Int
    /// AppendEntries messages with entries in flight to one follower, at most (the pipelining window).
    public var inflightAppendsMax: Int
    /// Payload bytes in flight to one follower, at most.
    public var inflightBytesMax: Int
    /// Ticks a leader waits for any answer to in-flight appends before it falls back to probing the follower.
    public var appendRetryTicks: Int

    /// A configuration with Keel's defaults.
    public init(
        id: NodeID,
        voters: [NodeID],
        electionTimeoutTicksMin: Int = 10,
        electionTimeoutTicksMax: Int = 20,
        heartbeatIntervalTicks: Int = 2,
        appendEntriesCountMax: Int = 64,
        appendBytesMax: Int = 1 << 20,
        inflightAppendsMax: Int = 4,
        inflightBytesMax: Int = 8 << 20,
        appendRetryTicks: Int = 10
    ) {
        self.id = id
        self.voters = voters.sorted()
        self.electionTimeoutTicksMin = electionTimeoutTicksMin
        self.electionTimeoutTicksMax = electionTimeoutTicksMax
        self.heartbeatIntervalTicks = heartbeatIntervalTicks
        self.appendEntriesCountMax = appendEntriesCountMax
        self.appendBytesMax = appendBytesMax
        self.inflightAppendsMax = inflightAppendsMax
        self.inflightBytesMax = inflightBytesMax
        self.appendRetryTicks = appendRetryTicks
    }

    /// Crashes on a configuration that cannot work; called once when a node is created.
    public func validate() {
        precondition(voters.contains(id), "a node must be one of the voters")
        precondition(Set(voters).count == voters.count, "voters must be unique")
        precondition(electionTimeoutTicksMin >= 1, "electionTimeoutTicksMin must be positive")
        precondition(electionTimeoutTicksMax > electionTimeoutTicksMin, "the election timeout range is empty")
        precondition(heartbeatIntervalTicks >= 1, "heartbeatIntervalTicks must be positive")
        precondition(heartbeatIntervalTicks < electionTimeoutTicksMin, "heartbeats must beat the election timeout")
        precondition(appendEntriesCountMax >= 1 && appendBytesMax >= 1, "append limits must be positive")
        precondition(inflightAppendsMax >= 1 && inflightBytesMax >= 1, "in-flight limits must be positive")
        precondition(appendRetryTicks >= 1, "appendRetryTicks must be positive")
    }

    /// Votes that make a majority.
    public var quorum: Int { voters.count / 2 + 1 }
}

/// SplitMix64: the only randomness of the core, seeded by the shell, so that a run replays exactly.
public struct SeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator that always yields the same sequence for the same seed.
    public init(seed: UInt64) { state = seed }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
