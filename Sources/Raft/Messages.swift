// The messages nodes of one Raft group exchange, and the effects the core hands to its shell.

/// One message between two nodes of a group. `term` is the sender's term, except in a granted pre-vote
/// request or answer, where it is the term the pre-candidate would campaign in.
public struct Message<Payload: RaftPayload>: Sendable {
    /// The sender.
    public var from: NodeID
    /// The receiver.
    public var to: NodeID
    /// See the type's comment.
    public var term: Term
    /// What it says.
    public var kind: MessageKind<Payload>

    /// Builds a message.
    public init(from: NodeID, to: NodeID, term: Term, kind: MessageKind<Payload>) {
        self.from = from
        self.to = to
        self.term = term
        self.kind = kind
    }
}

/// The kinds of messages.
public enum MessageKind<Payload: RaftPayload>: Sendable {
    /// "Would you vote for me in `term`?" Changes nobody's term (§9.6 of Ongaro's thesis).
    case preVoteRequest(lastIndex: LogIndex, lastTerm: Term)
    /// The answer to a pre-vote request.
    case preVoteResponse(granted: Bool)
    /// A real vote request. `transfer` marks a campaign started by TimeoutNow, which voters grant even while
    /// they still hear from a leader.
    case voteRequest(lastIndex: LogIndex, lastTerm: Term, transfer: Bool)
    /// The answer to a vote request.
    case voteResponse(granted: Bool)
    /// AppendEntries: `entries` follow the entry whose last index is `prevLastIndex`, of term `prevTerm`.
    case append(prevLastIndex: LogIndex, prevTerm: Term, entries: [Entry<Payload>], leaderCommit: LogIndex)
    /// A follower's answer to AppendEntries or to a log reset.
    case appendResponse(AppendResponse)
    /// A leader's heartbeat; `commit` is at most what the follower is known to hold.
    case heartbeat(commit: LogIndex)
    /// The answer to a heartbeat.
    case heartbeatResponse
    /// The log's InstallSnapshot: the follower lacks entries that the leader's retention already deleted, so
    /// it restarts its log empty at `start` (the leader's log start offset), the entry before it having term
    /// `prevTerm`; normal appends follow.
    case resetLog(start: LogIndex, prevTerm: Term, leaderCommit: LogIndex)
    /// "Campaign now": the last step of a leadership transfer.
    case timeoutNow
}

/// A follower's answer to AppendEntries.
public enum AppendResponse: Sendable, Equatable {
    /// The follower's log matches the leader's, and is durable, up to `match`.
    case accepted(match: LogIndex)
    /// The follower's log does not hold `prevLastIndex` with the leader's term. `hintIndex` is the follower's
    /// last index whose term is at most the leader's `prevTerm`, `hintTerm` that term, so the leader can skip
    /// a whole term of conflicting entries per round trip.
    case rejected(prevLastIndex: LogIndex, hintIndex: LogIndex, hintTerm: Term)
}

/// A change the shell must make to its log: first the cut, then the appends.
public struct LogWrite<Payload: RaftPayload>: Sendable {
    /// What to remove before appending.
    public var cut: LogCut
    /// Entries to append, contiguous, the first starting right after the log's (cut) end.
    public var entries: [Entry<Payload>]

    /// Builds a log write.
    public init(cut: LogCut, entries: [Entry<Payload>]) {
        self.cut = cut
        self.entries = entries
    }

    /// True when the write changes nothing.
    public var isEmpty: Bool { cut == .none && entries.isEmpty }
}

/// How a log write cuts the existing log.
public enum LogCut: Sendable, Equatable {
    /// Keep everything.
    case none
    /// Drop every entry whose last index is beyond `index` (always a batch boundary, never committed).
    case truncateAfter(LogIndex)
    /// Drop the whole log; it now starts empty at `start`, the entry before it having had term `prevTerm`.
    case reset(start: LogIndex, prevTerm: Term)
}

/// What the shell must do after a batch of calls into the core, like etcd's `Ready`.
///
/// Order: make `hardState` durable, then apply `logWrite` to the log (visible to the reader before the next
/// call; the fsync may complete later and is reported with `persisted(upTo:term:)`), then send `messages`, then
/// expose everything up to `commitIndex` (the high watermark is `commitIndex + 1`).
public struct Ready<Payload: RaftPayload>: Sendable {
    /// The hard state, when it changed; durable before any message is sent.
    public var hardState: HardState?
    /// The log change, when there is one.
    public var logWrite: LogWrite<Payload>?
    /// Messages to send, in order; any of them may be lost.
    public var messages: [Message<Payload>]
    /// The new commit index, when it moved.
    public var commitIndex: LogIndex?

    /// True when there is nothing to do.
    public var isEmpty: Bool { hardState == nil && logWrite == nil && messages.isEmpty && commitIndex == nil }
}

/// The shell's log as the core reads it: synchronous, and showing every `LogWrite` already handed out.
public protocol RaftLogReader<Payload> {
    /// The payload of entries.
    associatedtype Payload: RaftPayload
    /// The log start offset: the first index of the first entry held (retention may have removed older ones).
    var firstIndex: LogIndex { get }
    /// The last index of the last entry, or `firstIndex - 1` when the log is empty.
    var lastIndex: LogIndex { get }
    /// The term of the entry that covers `index`, for `firstIndex - 1 ... lastIndex` (at `firstIndex - 1`, the
    /// term of the last removed entry, or zero for a fresh log); nil outside that range.
    func term(at index: LogIndex) -> Term?
    /// Entries in order, starting with the one that covers `index`, up to `countMax` entries and `bytesMax`
    /// bytes (at least one entry when `index` is held). Empty when `index` is beyond the last index.
    func entries(from index: LogIndex, countMax: Int, bytesMax: Int) -> [Entry<Payload>]
}

/// Why `RaftNode.step` dropped a message: it decodes, but no correct peer could have sent it to this node in
/// its situation (a bug, version skew, a misrouted or corrupted-but-checksummed frame). The node neither trusts
/// nor answers it; its term, vote, log and commit index are as if it never arrived. The shell may count it and
/// log it at a rate limit; it must not crash on it.
public enum InvalidMessage: Error, Equatable, Sendable, CustomStringConvertible {
    /// Addressed to another node.
    case misrouted(to: NodeID)
    /// From this node itself, or from a node that is not a voter of the group.
    case notAVoter(NodeID)
    /// A term above `Term.max`, or an index outside `LogIndex.none ... LogIndex.max`.
    case outOfRange(String)
    /// Inconsistent in itself: entries that do not chain from the previous index, terms out of order or above
    /// the message's term, a payload that does not cover its entry.
    case malformed(String)
    /// Claims to lead a term in which this node leads, or knows another leader.
    case secondLeader(NodeID)
    /// Would undo committed entries, or names batches whose boundaries differ from this node's entries of the
    /// same term (one leader per term writes each range once, so they cannot differ).
    case contradictsLog(String)
    /// An answer about entries this leader never had.
    case beyondLog(String)

    /// One line for the shell's log.
    public var description: String {
        switch self {
        case .misrouted(let to): "addressed to n\(to)"
        case .notAVoter(let from): "from n\(from), not another voter of the group"
        case .outOfRange(let why): "out of range: \(why)"
        case .malformed(let why): "malformed: \(why)"
        case .secondLeader(let from): "n\(from) claims a leadership this node knows to be another's"
        case .contradictsLog(let why): "contradicts the log: \(why)"
        case .beyondLog(let why): "beyond the log: \(why)"
        }
    }
}
