// What a leader knows about each follower.

/// A leader's view of one follower's log.
public struct Progress: Sendable, Equatable {
    /// How the leader currently sends to the follower.
    public enum Mode: Sendable, Equatable {
        /// One append at a time until the follower's log position is found; `paused` after a send, until an
        /// answer or a heartbeat answer arrives.
        case probe(paused: Bool)
        /// Pipelined appends, at most `inflightAppendsMax` messages and `inflightBytesMax` bytes outstanding.
        case replicate
        /// A log reset to `start` is outstanding.
        case resetLog(start: LogIndex)
    }

    /// The highest index known to match the leader's log and to be durable on the follower.
    public internal(set) var match: LogIndex
    /// The next index to send.
    public internal(set) var next: LogIndex
    /// The sending mode.
    public internal(set) var mode: Mode
    /// The highest commit index sent along with entries the follower can hold (the follower's commit, as far as
    /// the leader knows); a leader sends an empty append when its commit index is ahead of it.
    var sentCommit: LogIndex
    /// Whether the follower answered since the last check-quorum round.
    public internal(set) var recentActive: Bool
    /// Ticks since the last append answer while something was outstanding.
    var stalledTicks: Int
    /// Outstanding appends: the last index each carried, and its payload bytes, oldest first.
    var inflights: [(lastIndex: LogIndex, bytes: Int)]
    var inflightBytes: Int

    init(next: LogIndex) {
        match = .none
        self.next = next
        mode = .probe(paused: false)
        sentCommit = .none
        recentActive = false
        stalledTicks = 0
        inflights = []
        inflightBytes = 0
    }

    /// Messages with entries awaiting an answer.
    public var inflightCount: Int { inflights.count }

    func inflightFull(_ config: RaftConfiguration) -> Bool {
        inflights.count >= config.inflightAppendsMax || inflightBytes >= config.inflightBytesMax
    }

    mutating func freeInflights(upTo index: LogIndex) {
        var k = 0
        while k < inflights.count, inflights[k].lastIndex <= index {
            inflightBytes -= inflights[k].bytes
            k += 1
        }
        inflights.removeFirst(k)
    }

    mutating func becomeProbe() {
        mode = .probe(paused: false)
        next = match + 1
        inflights = []
        inflightBytes = 0
        stalledTicks = 0
    }

    mutating func becomeReplicate() {
        mode = .replicate
        next = match + 1
        inflights = []
        inflightBytes = 0
        stalledTicks = 0
    }

    /// Equality for tests and tracing: the replication position and mode.
    public static func == (lhs: Progress, rhs: Progress) -> Bool {
        lhs.match == rhs.match && lhs.next == rhs.next && lhs.mode == rhs.mode
    }
}
