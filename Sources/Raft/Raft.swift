// Raft: consensus for one partition as a deterministic, value-typed state machine.
//
// What it owns: the election (pre-vote, check-quorum, leadership transfer), the replication protocol (AppendEntries
// with batch-boundary conflict truncation, fast back-off, pipelined appends per follower, log resets for followers
// behind the leader's log start) and the commit index. One `RaftNode` is one replica of one partition.
//
// What it must never do: I/O, reading a clock, drawing unseeded randomness, threads, or holding the log. The log
// belongs to the shell (LogStorage in Keel, an array in the simulation); the core reads it through
// `RaftLogReader`, and asks for changes through `Ready.logWrite`.
//
// Keel's shape: an entry is a Kafka record batch covering the index range `firstIndex...lastIndex` (its base and
// last offset); its Raft index is its last index; its term is the batch's partitionLeaderEpoch. Offsets are Raft
// positions: a fresh log starts at 0, and the only Raft-internal entry ever written is the one LEADER_CHANGE
// no-op of a new leader whose log extends past its commit index.
//
// Main types: `RaftNode` (calls in: `tick`, `step`, `propose`, `transferLeadership`, `persisted`; effects out:
// `ready()`), `Role`, `Progress`, `Message`, `Ready`, `LogWrite`, `RaftLogReader`, and the distinct numbers
// `Term`, `NodeID`, `LogIndex`.
//
// Driving it: call in, then `ready()`, then persist the hard state durably, apply the log write (visible to the
// reader at once; fsync may finish later and is reported with `persisted(upTo:term:)`), then send the messages,
// then expose entries up to the commit index. A follower acknowledges only durable entries, and a leader counts
// its own entries toward the commit only once they are durable, so the fsync may run asynchronously.

/// The role of a node, with the state that only that role has.
public enum Role: Sendable {
    /// Follows `leader`, when it knows one.
    case follower(leader: NodeID?)
    /// Asks for pre-votes for the next term without changing its own; `votes` holds the answers so far.
    case preCandidate(votes: [NodeID: Bool])
    /// Campaigns in its current term; `votes` holds the answers so far.
    case candidate(votes: [NodeID: Bool])
    /// Leads its current term.
    case leader(LeaderState)
}

/// What only a leader keeps.
public struct LeaderState: Sendable {
    /// Each follower's progress (keyed by node id; iterate the sorted voters, never this dictionary).
    public internal(set) var progress: [NodeID: Progress]
    /// The node leadership is being handed to, if a transfer is under way.
    public internal(set) var transferTarget: NodeID?
    /// Ticks since the transfer started; it is abandoned after an election timeout.
    var transferElapsedTicks: Int
}

/// Why a proposal was refused.
public enum ProposalError: Error, Equatable, Sendable {
    /// Only the leader accepts proposals; `leader` is the one this node knows of, if any.
    case notLeader(leader: NodeID?)
    /// The leader is handing its leadership away.
    case transferInProgress
}

/// Why a leadership transfer was refused.
public enum TransferError: Error, Equatable, Sendable {
    /// Only the leader can hand leadership away.
    case notLeader
    /// The target is not another voter of this group.
    case unknownTarget
}

/// One replica of one Raft group. See the module overview above.
public struct RaftNode<Payload: RaftPayload>: Sendable {
    /// Limits, timings and the voters.
    public let configuration: RaftConfiguration
    /// The other voters, sorted: every loop over followers walks this array, never a dictionary.
    private let peers: [NodeID]
    /// The current term.
    public private(set) var term: Term
    /// The vote cast in the current term.
    public private(set) var votedFor: NodeID?
    /// Follower, pre-candidate, candidate or leader.
    public private(set) var role: Role
    /// The highest index known committed; never moves back during the node's life.
    public private(set) var commitIndex: LogIndex
    /// The highest index of this node's log known durable (and still part of the log); below the log start
    /// while a log reset is not yet durable.
    public private(set) var persistedIndex: LogIndex
    /// Messages `step` dropped as invalid since the node started (see `InvalidMessage`).
    public private(set) var invalidMessageCount = 0

    private var overlay = LogOverlay<Payload>()
    private var outbox: [Message<Payload>] = []
    private var hardStateChanged = false
    private var commitChanged = false
    private var electionElapsedTicks = 0
    private var heartbeatElapsedTicks = 0
    private var electionTimeoutTicks = 0
    private var random: SeededRandom
    /// What this follower owes its leader: entries up to `matched` match the leader's log; `sent` was acknowledged.
    private var acknowledgement: (leader: NodeID, term: Term, matched: LogIndex, sent: LogIndex)?

    /// This node's id.
    public var id: NodeID { configuration.id }

    /// The leader this node knows of in its term (itself when leading).
    public var leader: NodeID? {
        switch role {
        case .follower(let leader): return leader
        case .leader: return id
        case .preCandidate, .candidate: return nil
        }
    }

    /// True while this node leads.
    public var isLeader: Bool {
        if case .leader = role { return true }
        return false
    }

    /// A node restarted from what the shell kept: the durable hard state and the recovered log. The commit index
    /// restarts at the entry before the log start (retention only removes committed entries), or at
    /// `knownCommitted` when the shell kept a commit index from a clean shutdown (bounded by the log: a committed
    /// entry is never truncated, but a damaged disk may have lost some).
    public init(
        configuration: RaftConfiguration, hardState: HardState, log: some RaftLogReader<Payload>, seed: UInt64,
        knownCommitted: LogIndex? = nil
    ) {
        configuration.validate()
        self.configuration = configuration
        peers = configuration.voters.filter { $0 != configuration.id }
        term = hardState.term
        votedFor = hardState.votedFor
        role = .follower(leader: nil)
        commitIndex = max(log.firstIndex - 1, min(knownCommitted ?? .none, log.lastIndex))
        persistedIndex = log.lastIndex
        random = SeededRandom(seed: seed)
        resetElectionTimeout()
    }

    // MARK: - The log as the core sees it (the reader plus what the shell has not applied yet)

    /// The log start offset.
    public func firstIndex(_ log: some RaftLogReader<Payload>) -> LogIndex { overlay.firstIndex(log) }

    /// The last index of the log, including entries not yet handed to the shell.
    public func lastIndex(_ log: some RaftLogReader<Payload>) -> LogIndex { overlay.lastIndex(log) }

    /// The term of the entry covering `index`.
    public func term(at index: LogIndex, _ log: some RaftLogReader<Payload>) -> Term? { overlay.term(at: index, log) }

    private func lastTerm(_ log: some RaftLogReader<Payload>) -> Term {
        guard let term = overlay.term(at: lastIndex(log), log) else {
            preconditionFailure("the log must know the term of its last entry")
        }
        return term
    }

    // MARK: - Calls in

    /// Advances the logical clock by one tick: election timeouts, heartbeats, check-quorum, retries.
    public mutating func tick(log: some RaftLogReader<Payload>) {
        electionElapsedTicks += 1
        guard case .leader = role else {
            if electionElapsedTicks >= electionTimeoutTicks {
                electionElapsedTicks = 0
                startPreVote(log)
            }
            return
        }
        heartbeatElapsedTicks += 1
        if electionElapsedTicks >= configuration.electionTimeoutTicksMin {
            electionElapsedTicks = 0
            guard checkQuorum() else {
                becomeFollower(term: term, leader: nil)
                return
            }
        }
        var state = takeLeaderState()
        if state.transferTarget != nil {
            state.transferElapsedTicks += 1
            if state.transferElapsedTicks >= configuration.electionTimeoutTicksMin { state.transferTarget = nil }
        }
        for peer in peers {
            guard var progress = state.progress[peer] else { continue }
            let waiting: Bool
            switch progress.mode {
            case .replicate: waiting = !progress.inflights.isEmpty
            case .resetLog: waiting = true
            case .probe: waiting = false
            }
            if waiting {
                progress.stalledTicks += 1
                if progress.stalledTicks >= configuration.appendRetryTicks {
                    // Appends or a reset were lost (or their answers were): find the follower's position again.
                    progress.becomeProbe()
                }
            }
            state.progress[peer] = progress
        }
        role = .leader(state)
        if heartbeatElapsedTicks >= configuration.heartbeatIntervalTicks {
            heartbeatElapsedTicks = 0
            for peer in peers {
                guard let progress = state.progress[peer] else { continue }
                send(to: peer, .heartbeat(commit: min(progress.match, commitIndex)))
            }
        }
        for peer in peers { sendAppends(to: peer, log) }
    }

    /// The shell lost its link to `peer` (its connection closed: the process died or the host went away). A
    /// follower of `peer` stops trusting its leader's lease: it forgets the leader, so that it grants pre-votes,
    /// and lets its election timer run out within a few ticks (spread by the seeded generator, so that the other
    /// followers do not split the vote), instead of waiting a whole election timeout. Safety does not depend on
    /// it: a leader that is in fact alive keeps its followers (pre-vote fails while they hear from it) or is
    /// replaced by the usual rules.
    public mutating func peerUnreachable(_ peer: NodeID) {
        guard case .follower(let leader?) = role, leader == peer else { return }
        role = .follower(leader: nil)
        let spread = max(1, configuration.heartbeatIntervalTicks * 2)
        let remaining = 1 + Int(random.next() % UInt64(spread))
        electionElapsedTicks = max(electionElapsedTicks, electionTimeoutTicks - remaining)
    }

    /// Starts an election now, as if the election timeout had passed (with a pre-vote first). A leader ignores it.
    public mutating func campaign(log: some RaftLogReader<Payload>) {
        guard !isLeader else { return }
        electionElapsedTicks = 0
        startPreVote(log)
    }

    /// Proposes a payload; the leader assigns it the next `recordCount` indexes and returns that range.
    ///
    /// The entry is committed once `commitIndex` reaches the range's upper bound while the log still holds it
    /// with this leader's term (`term(at:)`); a later leader may have replaced it before, and then the shell
    /// answers the producer with an error (NOT_LEADER_OR_FOLLOWER) rather than a success.
    @discardableResult
    public mutating func propose(
        _ payload: Payload, log: some RaftLogReader<Payload>
    ) throws(ProposalError) -> ClosedRange<LogIndex> {
        guard case .leader(let state) = role else { throw .notLeader(leader: leader) }
        guard state.transferTarget == nil else { throw .transferInProgress }
        precondition(payload.recordCount >= 1, "a batch holds at least one record")
        let first = lastIndex(log) + 1
        let entry = Entry(
            term: term, firstIndex: first, lastIndex: first + Int64(payload.recordCount - 1),
            content: .data(payload))
        overlay.write(truncateAfter: nil, entries: [entry], log)
        maybeCommit(log)  // a group of one commits as soon as the entry is durable; this is a no-op otherwise
        for peer in peers { sendAppends(to: peer, log) }
        return entry.firstIndex...entry.lastIndex
    }

    /// Starts handing leadership to `target`: catch it up, then tell it to campaign at once. Proposals are refused
    /// until the transfer ends (the target wins, or an election timeout passes).
    public mutating func transferLeadership(to target: NodeID, log: some RaftLogReader<Payload>) throws(TransferError) {
        guard case .leader = role else { throw .notLeader }
        var state = takeLeaderState()
        guard target != id, configuration.voters.contains(target), var progress = state.progress[target] else {
            role = .leader(state)
            throw .unknownTarget
        }
        state.transferTarget = target
        state.transferElapsedTicks = 0
        let caughtUp = progress.match == lastIndex(log)
        if !caughtUp, case .replicate = progress.mode {
            // Appends to the target may have been lost; a transfer is rare, so probe again rather than wait.
            progress.becomeProbe()
            state.progress[target] = progress
        }
        role = .leader(state)
        if caughtUp {
            send(to: target, .timeoutNow)
        } else {
            sendAppends(to: target, log)
        }
    }

    /// The shell reports that its log is durable up to the entry ending at `index`, of term `term` (reports about
    /// entries that were cut meanwhile are ignored).
    public mutating func persisted(upTo index: LogIndex, term entryTerm: Term, log: some RaftLogReader<Payload>) {
        guard index > persistedIndex, index <= lastIndex(log), term(at: index, log) == entryTerm else { return }
        persistedIndex = index
        if case .leader = role {
            if maybeCommit(log) { broadcastCommit(log) }
        } else {
            sendOwedAcknowledgement()
        }
    }

    /// Takes the effects accumulated since the last call. See `Ready` for the order the shell must follow.
    public mutating func ready() -> Ready<Payload> {
        let ready = Ready(
            hardState: hardStateChanged ? HardState(term: term, votedFor: votedFor) : nil,
            logWrite: overlay.isEmpty ? nil : LogWrite(cut: overlay.cut, entries: overlay.entries),
            messages: outbox,
            commitIndex: commitChanged ? commitIndex : nil)
        hardStateChanged = false
        commitChanged = false
        overlay = LogOverlay()
        outbox = []
        return ready
    }

    /// Handles one message from another node of the group.
    ///
    /// A message that no correct peer could have sent (see `InvalidMessage`) is dropped: nothing in it is
    /// trusted, nothing is answered, and the reason is returned (and counted in `invalidMessageCount`) for the
    /// shell to log. Stale messages (an older term, an answer to a round that is over) are not invalid; they are
    /// ignored or answered as Raft says, and `step` returns nil.
    @discardableResult
    public mutating func step(_ message: Message<Payload>, log: some RaftLogReader<Payload>) -> InvalidMessage? {
        let invalid = stepChecked(message, log)
        if invalid != nil { invalidMessageCount += 1 }
        return invalid
    }

    private mutating func stepChecked(_ message: Message<Payload>, _ log: some RaftLogReader<Payload>)
        -> InvalidMessage?
    {
        guard message.to == id else { return .misrouted(to: message.to) }
        guard message.from != id, configuration.voters.contains(message.from) else {
            return .notAVoter(message.from)
        }
        if let invalid = Self.checkFields(message) { return invalid }
        // Appends and resets are planned against the log before anything changes, so that one refused as
        // invalid changes nothing, not even the term.
        var appendPlan: AppendPlan?
        var resetPlan: ResetPlan?
        if message.term >= term {
            switch message.kind {
            case .append(let prevLastIndex, let prevTerm, let entries, _):
                switch planAppend(prevLastIndex: prevLastIndex, prevTerm: prevTerm, entries: entries, log) {
                case .success(let plan): appendPlan = plan
                case .failure(let invalid): return invalid
                }
            case .resetLog(let start, let prevTerm, _):
                switch planReset(start: start, prevTerm: prevTerm, log) {
                case .success(let plan): resetPlan = plan
                case .failure(let invalid): return invalid
                }
            default: break
            }
        }
        if message.term > term {
            switch message.kind {
            case .preVoteRequest, .voteRequest(_, _, transfer: false):
                // Check-quorum's lease: while this node hears from a leader, nobody can take its vote away.
                if inLease { return nil }
            case .voteResponse(granted: true):
                // Votes are granted in the candidate's term, and this node never was in that one.
                return .malformed("a vote granted in term \(message.term), above this node's term \(term)")
            case .preVoteResponse(granted: true) where message.term != term.next:
                return .malformed("a pre-vote granted for term \(message.term), never asked for (term \(term))")
            default: break
            }
            switch message.kind {
            case .preVoteRequest, .preVoteResponse(granted: true):
                break  // a pre-vote never changes a term
            case .append, .heartbeat, .resetLog, .timeoutNow:
                becomeFollower(term: message.term, leader: message.from)
            default:
                becomeFollower(term: message.term, leader: nil)
            }
        } else if message.term < term {
            switch message.kind {
            case .append, .heartbeat, .resetLog:
                // A deposed leader learns the new term from the answer, and steps down.
                send(to: message.from, .heartbeatResponse)
            case .preVoteRequest:
                send(to: message.from, .preVoteResponse(granted: false))
            default:
                break
            }
            return nil
        } else {
            switch message.kind {
            case .append, .heartbeat, .resetLog, .timeoutNow:
                // One leader per term: a second one, or a message claiming to come from this node's own term's
                // leadership, is a broken peer.
                switch role {
                case .leader: return .secondLeader(message.from)
                case .follower(let known?) where known != message.from: return .secondLeader(message.from)
                default: break
                }
            default: break
            }
        }
        switch message.kind {
        case .preVoteRequest(let lastIndex, let lastTerm):
            handleVoteRequest(message, lastIndex: lastIndex, lastTerm: lastTerm, pre: true, log)
        case .voteRequest(let lastIndex, let lastTerm, _):
            handleVoteRequest(message, lastIndex: lastIndex, lastTerm: lastTerm, pre: false, log)
        case .preVoteResponse(let granted):
            guard case .preCandidate(var votes) = role, message.term == term.next || !granted else { return nil }
            votes[message.from] = granted
            role = .preCandidate(votes: votes)
            switch tally(votes) {
            case .won: startCampaign(transfer: false, log)
            case .lost: becomeFollower(term: term, leader: nil)
            case .pending: break
            }
        case .voteResponse(let granted):
            guard case .candidate(var votes) = role else { return nil }
            votes[message.from] = granted
            role = .candidate(votes: votes)
            switch tally(votes) {
            case .won: becomeLeader(log)
            case .lost: becomeFollower(term: term, leader: nil)
            case .pending: break
            }
        case .append(_, _, _, let leaderCommit):
            guard let appendPlan else { preconditionFailure("an append in the current term is planned") }
            followLeader(message.from)
            handleAppend(from: message.from, appendPlan, leaderCommit: leaderCommit, log)
        case .heartbeat(let commit):
            followLeader(message.from)
            advanceCommit(to: min(commit, lastIndex(log)))
            send(to: message.from, .heartbeatResponse)
        case .resetLog(let start, let prevTerm, let leaderCommit):
            guard let resetPlan else { preconditionFailure("a reset in the current term is planned") }
            followLeader(message.from)
            handleResetLog(from: message.from, resetPlan, start: start, prevTerm: prevTerm, leaderCommit: leaderCommit)
        case .timeoutNow:
            if !isLeader { startCampaign(transfer: true, log) }
        case .appendResponse(let response):
            return handleAppendResponse(from: message.from, response, log)
        case .heartbeatResponse:
            handleHeartbeatResponse(from: message.from, log)
        }
        return nil
    }

    /// What is wrong with a message in itself, whatever this node's state: numbers out of range, entries that
    /// do not chain from `prevLastIndex` or whose terms go back or exceed the sender's term.
    private static func checkFields(_ message: Message<Payload>) -> InvalidMessage? {
        let term = message.term
        guard term <= Term.max else { return .outOfRange("term \(term)") }
        func index(_ value: LogIndex, _ field: String, min: LogIndex = .none) -> InvalidMessage? {
            value >= min && value <= LogIndex.max ? nil : .outOfRange("\(field) \(value)")
        }
        switch message.kind {
        case .preVoteRequest(let lastIndex, let lastTerm), .voteRequest(let lastIndex, let lastTerm, _):
            if let invalid = index(lastIndex, "lastIndex") { return invalid }
            guard lastTerm <= term else { return .malformed("last term \(lastTerm) above the message term") }
        case .append(let prevLastIndex, let prevTerm, let entries, let leaderCommit):
            if let invalid = index(prevLastIndex, "prevLastIndex") ?? index(leaderCommit, "leaderCommit") {
                return invalid
            }
            guard prevTerm <= term else { return .malformed("prev term \(prevTerm) above the message term") }
            var last = prevLastIndex
            var lastTerm = prevTerm
            for entry in entries {
                guard entry.firstIndex == last + 1 else {
                    return .malformed("entry \(entry.firstIndex)...\(entry.lastIndex) does not follow \(last)")
                }
                guard entry.firstIndex <= entry.lastIndex, entry.lastIndex <= LogIndex.max else {
                    return .outOfRange("entry \(entry.firstIndex)...\(entry.lastIndex)")
                }
                guard entry.term >= lastTerm, entry.term >= Term(1), entry.term <= term else {
                    return .malformed(
                        "entry \(entry.firstIndex)...\(entry.lastIndex) of term \(entry.term) after term "
                            + "\(lastTerm), in a message of term \(term)")
                }
                switch entry.content {
                case .data(let payload):
                    guard Int64(payload.recordCount) == entry.recordCount else {
                        return .malformed(
                            "entry \(entry.firstIndex)...\(entry.lastIndex) holds \(payload.recordCount) records")
                    }
                case .leaderChange:
                    guard entry.recordCount == 1 else { return .malformed("a leader change covers one index") }
                }
                last = entry.lastIndex
                lastTerm = entry.term
            }
        case .appendResponse(.accepted(let match)):
            return index(match, "match")
        case .appendResponse(.rejected(let prevLastIndex, let hintIndex, let hintTerm)):
            if let invalid = index(prevLastIndex, "prevLastIndex") { return invalid }
            // The hint is at most the rejected index; it is two below the follower's log start when the leader's
            // index lies below that start.
            guard hintIndex >= LogIndex(-2), hintIndex <= prevLastIndex, hintTerm <= term else {
                return .malformed("hint \(hintIndex)@\(hintTerm) for a rejection of \(prevLastIndex)")
            }
        case .heartbeat(let commit):
            return index(commit, "commit")
        case .resetLog(let start, let prevTerm, let leaderCommit):
            if let invalid = index(start, "start", min: .zero) ?? index(leaderCommit, "leaderCommit") {
                return invalid
            }
            guard prevTerm <= term else { return .malformed("prev term \(prevTerm) above the message term") }
            // Retention removes only committed entries, so a leader's commit index is at least its log start - 1.
            guard leaderCommit >= start - 1 else {
                return .malformed("log start \(start) above the leader's commit index \(leaderCommit) + 1")
            }
        case .preVoteResponse, .voteResponse, .heartbeatResponse, .timeoutNow:
            break
        }
        return nil
    }

    // MARK: - Elections

    /// True while a leader is known and was heard from within the minimum election timeout.
    private var inLease: Bool {
        switch role {
        case .leader: return true
        case .follower(.some): return electionElapsedTicks < configuration.electionTimeoutTicksMin
        default: return false
        }
    }

    private mutating func resetElectionTimeout() {
        let spread = UInt64(configuration.electionTimeoutTicksMax - configuration.electionTimeoutTicksMin)
        electionTimeoutTicks = configuration.electionTimeoutTicksMin + Int(random.next() % spread)
    }

    private mutating func becomeFollower(term newTerm: Term, leader: NodeID?) {
        precondition(newTerm >= term, "terms never go back")
        if newTerm > term {
            term = newTerm
            votedFor = nil
            hardStateChanged = true
        }
        if let owed = acknowledgement, owed.term != term || owed.leader != leader { acknowledgement = nil }
        role = .follower(leader: leader)
        electionElapsedTicks = 0
        resetElectionTimeout()
    }

    /// Records the sender of an append, heartbeat or reset as this term's leader (at most one per term: `step`
    /// drops a message from a second one before it gets here).
    private mutating func followLeader(_ sender: NodeID) {
        switch role {
        case .leader:
            preconditionFailure("two leaders in term \(term): \(id) and \(sender)")
        case .follower(let known?):
            precondition(known == sender, "two leaders in term \(term): \(known) and \(sender)")
            electionElapsedTicks = 0
        default:
            becomeFollower(term: term, leader: sender)
        }
    }

    private mutating func startPreVote(_ log: some RaftLogReader<Payload>) {
        guard term < Term.max else { return }  // see `Term.max`
        role = .preCandidate(votes: [id: true])
        electionElapsedTicks = 0
        resetElectionTimeout()
        if case .won = tally([id: true]) {
            startCampaign(transfer: false, log)
            return
        }
        let lastIndex = lastIndex(log)
        let lastTerm = lastTerm(log)
        for peer in peers {
            outbox.append(
                Message(
                    from: id, to: peer, term: term.next,
                    kind: .preVoteRequest(lastIndex: lastIndex, lastTerm: lastTerm)))
        }
    }

    private mutating func startCampaign(transfer: Bool, _ log: some RaftLogReader<Payload>) {
        guard term < Term.max else { return }  // see `Term.max`
        term = term.next
        votedFor = id
        hardStateChanged = true
        acknowledgement = nil
        role = .candidate(votes: [id: true])
        electionElapsedTicks = 0
        resetElectionTimeout()
        if case .won = tally([id: true]) {
            becomeLeader(log)
            return
        }
        let lastIndex = lastIndex(log)
        let lastTerm = lastTerm(log)
        for peer in peers {
            send(to: peer, .voteRequest(lastIndex: lastIndex, lastTerm: lastTerm, transfer: transfer))
        }
    }

    private enum Tally { case won, lost, pending }

    private func tally(_ votes: [NodeID: Bool]) -> Tally {
        var granted = 0
        var rejected = 0
        for voter in configuration.voters {
            switch votes[voter] {
            case true?: granted += 1
            case false?: rejected += 1
            case nil: break
            }
        }
        if granted >= configuration.quorum { return .won }
        if rejected > configuration.voters.count - configuration.quorum { return .lost }
        return .pending
    }

    private mutating func handleVoteRequest(
        _ message: Message<Payload>, lastIndex: LogIndex, lastTerm: Term, pre: Bool, _ log: some RaftLogReader<Payload>
    ) {
        // A real vote is given once per term; a pre-vote for a future term binds nothing.
        let canVote =
            votedFor == message.from || (votedFor == nil && leader == nil) || (pre && message.term > term)
        let ourLastTerm = self.lastTerm(log)
        // Up to date: a later last term, or the same last term and at least as long a log (§5.4.1).
        let upToDate = lastTerm > ourLastTerm || (lastTerm == ourLastTerm && lastIndex >= self.lastIndex(log))
        if canVote && upToDate {
            if pre {
                outbox.append(
                    Message(
                        from: id, to: message.from, term: message.term,
                        kind: .preVoteResponse(granted: true)))
            } else {
                votedFor = message.from
                hardStateChanged = true
                electionElapsedTicks = 0
                send(to: message.from, .voteResponse(granted: true))
            }
        } else {
            send(to: message.from, pre ? .preVoteResponse(granted: false) : .voteResponse(granted: false))
        }
    }

    private mutating func becomeLeader(_ log: some RaftLogReader<Payload>) {
        let next = lastIndex(log) + 1
        var progress: [NodeID: Progress] = [:]
        for peer in peers { progress[peer] = Progress(next: next) }
        role = .leader(LeaderState(progress: progress, transferTarget: nil, transferElapsedTicks: 0))
        acknowledgement = nil
        electionElapsedTicks = 0
        heartbeatElapsedTicks = 0
        // Entries of earlier terms commit only through one of the leader's own term (§5.4.2). An empty or fully
        // committed log needs none: a fresh partition still starts at offset 0 and a quiet failover leaves no gap.
        // The only voter of a group holds the only copy of its log: whatever of it is durable cannot be replaced by
        // another leader, so it is committed as it stands (a restarted single node adds no batch).
        if peers.isEmpty, persistedIndex > commitIndex, persistedIndex >= firstIndex(log) - 1 {
            advanceCommit(to: persistedIndex)
        }
        if lastIndex(log) > commitIndex {
            let entry = Entry<Payload>(term: term, firstIndex: next, lastIndex: next, content: .leaderChange)
            overlay.write(truncateAfter: nil, entries: [entry], log)
        }
        maybeCommit(log)
        for peer in peers { sendAppends(to: peer, log, allowEmpty: true) }
    }

    /// Counts the voters that answered since the last round (the leader itself included) and clears the marks.
    private mutating func checkQuorum() -> Bool {
        var state = takeLeaderState()
        var active = 1
        for peer in peers {
            guard var progress = state.progress[peer] else { continue }
            if progress.recentActive { active += 1 }
            progress.recentActive = false
            state.progress[peer] = progress
        }
        role = .leader(state)
        return active >= configuration.quorum
    }

    // MARK: - Replication, follower side

    /// What an append will do to this follower, decided before anything changes, so that an invalid one changes
    /// nothing (not even the term it carries).
    private enum AppendPlan {
        /// The log does not hold `prevLastIndex` with the leader's term: answer with a hint.
        case reject(prevLastIndex: LogIndex, hintIndex: LogIndex, hintTerm: Term)
        /// The log matches up to `lastNew` once `tail` (possibly empty) is appended after cutting at `truncate`.
        case accept(truncate: LogIndex?, tail: [Entry<Payload>], lastNew: LogIndex)
    }

    /// Plans an append whose fields `checkFields` accepted (entries chain from `prevLastIndex`, terms never go
    /// back). Refuses one that would contradict the committed prefix or split one of this node's batches.
    private func planAppend(
        prevLastIndex: LogIndex, prevTerm: Term, entries: [Entry<Payload>], _ log: some RaftLogReader<Payload>
    ) -> Result<AppendPlan, InvalidMessage> {
        var prevLastIndex = prevLastIndex
        var prevTerm = prevTerm
        var entries = entries
        if prevLastIndex < commitIndex {
            // The committed prefix matches every leader's log: skip what it covers, after checking that it does
            // (the entry ending at the commit index is always checked, and the terms after it never go back).
            for entry in entries where entry.lastIndex <= commitIndex {
                if let ours = term(at: entry.lastIndex, log), ours != entry.term {
                    return .failure(
                        .contradictsLog(
                            "\(entry.lastIndex)@\(entry.term) differs from committed \(entry.lastIndex)@\(ours)"))
                }
            }
            entries.removeAll { $0.lastIndex <= commitIndex }
            guard entries.first.map({ $0.firstIndex == commitIndex + 1 }) ?? true else {
                return .failure(.contradictsLog("a batch straddles the commit index \(commitIndex)"))
            }
            guard let committedTerm = term(at: commitIndex, log) else {
                preconditionFailure("node \(id) lacks the term of its commit index \(commitIndex)")
            }
            prevLastIndex = commitIndex
            prevTerm = committedTerm
        }
        guard let ourTerm = term(at: prevLastIndex, log), ourTerm == prevTerm else {
            let (hintIndex, hintTerm) = lastIndex(
                atOrBefore: min(prevLastIndex, lastIndex(log)), termAtMost: prevTerm, log)
            return .success(.reject(prevLastIndex: prevLastIndex, hintIndex: hintIndex, hintTerm: hintTerm))
        }
        // Entries of one term are written once, by its one leader, so a batch of the same term must have the same
        // boundaries here; a cut or a match in the middle of one of ours would split it.
        guard endsEntry(prevLastIndex, log) else {
            return .failure(.contradictsLog("\(prevLastIndex)@\(prevTerm) is inside one of this node's batches"))
        }
        var lastNew = prevLastIndex
        for (k, entry) in entries.enumerated() {
            if term(at: entry.lastIndex, log) == entry.term {
                // The same batch (one leader per term writes each range once).
                guard holdsRange(of: entry, log) else {
                    return .failure(
                        .contradictsLog(
                            "batch \(entry.firstIndex)...\(entry.lastIndex)@\(entry.term) splits one of this node's"))
                }
                lastNew = entry.lastIndex
                continue
            }
            // The first conflicting or missing batch: cut our log at its start (a batch boundary) and append.
            let cut = entry.firstIndex - 1
            precondition(cut >= commitIndex, "a leader asked node \(id) to truncate committed entries")
            let tail = Array(entries[k...])
            return .success(
                .accept(truncate: cut < lastIndex(log) ? cut : nil, tail: tail, lastNew: tail[tail.count - 1].lastIndex)
            )
        }
        return .success(.accept(truncate: nil, tail: [], lastNew: lastNew))
    }

    private mutating func handleAppend(
        from leader: NodeID, _ plan: AppendPlan, leaderCommit: LogIndex, _ log: some RaftLogReader<Payload>
    ) {
        switch plan {
        case .reject(let prevLastIndex, let hintIndex, let hintTerm):
            send(
                to: leader,
                .appendResponse(.rejected(prevLastIndex: prevLastIndex, hintIndex: hintIndex, hintTerm: hintTerm)))
        case .accept(let truncate, let tail, let lastNew):
            if let truncate { persistedIndex = min(persistedIndex, truncate) }
            if !tail.isEmpty { overlay.write(truncateAfter: truncate, entries: tail, log) }
            advanceCommit(to: min(leaderCommit, lastNew))
            acknowledge(leader: leader, matched: lastNew)
        }
    }

    /// Whether an entry of this node's log ends at `index` (or `index` is just before the log start). Reads the
    /// log only when `index` is neither its end nor its start: on a retransmission, not in steady replication.
    private func endsEntry(_ index: LogIndex, _ log: some RaftLogReader<Payload>) -> Bool {
        if index == lastIndex(log) || index == firstIndex(log) - 1 { return true }
        return overlay.entries(from: index, countMax: 1, bytesMax: 1, log).first?.lastIndex == index
    }

    /// Whether this node's log holds an entry over exactly `entry`'s range (reads the log).
    private func holdsRange(of entry: Entry<Payload>, _ log: some RaftLogReader<Payload>) -> Bool {
        guard let ours = overlay.entries(from: entry.lastIndex, countMax: 1, bytesMax: 1, log).first else {
            return false
        }
        return ours.firstIndex == entry.firstIndex && ours.lastIndex == entry.lastIndex
    }

    /// What a log reset will do to this follower, decided before anything changes.
    private enum ResetPlan {
        /// The log already holds the leader's log start: nothing to reset.
        case held
        /// The log starts past the leader's: its committed prefix is all the leader needs to know.
        case startsLater
        /// Restart the log empty at the leader's start.
        case reset
    }

    /// Plans a log reset whose fields `checkFields` accepted; refuses one that contradicts committed entries or
    /// puts the log start inside one of this node's batches.
    private func planReset(start: LogIndex, prevTerm: Term, _ log: some RaftLogReader<Payload>)
        -> Result<ResetPlan, InvalidMessage>
    {
        let before = start - 1
        if let ourTerm = term(at: before, log) {
            if ourTerm == prevTerm {
                guard endsEntry(before, log) else {
                    return .failure(.contradictsLog("log start \(start) is inside one of this node's batches"))
                }
                return .success(.held)
            }
            guard before > commitIndex else {
                return .failure(
                    .contradictsLog(
                        "a reset to start \(start) after @\(prevTerm) contradicts committed \(before)@\(ourTerm)"))
            }
        } else if before < firstIndex(log) - 1 {
            return .success(.startsLater)
        }
        return .success(.reset)
    }

    private mutating func handleResetLog(
        from leader: NodeID, _ plan: ResetPlan, start: LogIndex, prevTerm: Term, leaderCommit: LogIndex
    ) {
        let before = start - 1
        switch plan {
        case .held:
            advanceCommit(to: min(leaderCommit, before))
            acknowledge(leader: leader, matched: before)
        case .startsLater:
            // Our log already starts past the leader's (our own retention, or an earlier reset): we hold more than
            // the leader believes. Our committed prefix is in every later leader's log, so say how far it reaches;
            // ignoring the reset left the leader resetting forever (found by simulation seed 291, 3 nodes).
            acknowledge(leader: leader, matched: commitIndex)
        case .reset:
            precondition(before > commitIndex, "a log reset contradicts node \(id)'s committed entries")
            overlay.reset(start: start, prevTerm: prevTerm)
            // Nothing of the old log survives a reset, not even below `start`: until the reset itself is durable,
            // a crash brings the old log back, so nothing may be acknowledged (found by simulation seed 5807, 5
            // nodes).
            persistedIndex = min(persistedIndex, before - 1)
            advanceCommit(to: before)
            acknowledge(leader: leader, matched: before)
        }
    }

    /// Notes that the log matches `leader`'s up to `matched`, and answers at once if that is already durable;
    /// otherwise the answer goes out when `persisted(upTo:term:)` covers it.
    private mutating func acknowledge(leader: NodeID, matched: LogIndex) {
        if var owed = acknowledgement, owed.leader == leader, owed.term == term {
            owed.matched = max(owed.matched, matched)
            acknowledgement = owed
        } else {
            acknowledgement = (leader, term, matched, .none)
        }
        let durable = min(acknowledgement!.matched, persistedIndex)
        if durable >= matched {
            acknowledgement!.sent = max(acknowledgement!.sent, durable)
            send(to: leader, .appendResponse(.accepted(match: durable)))
        }
    }

    private mutating func sendOwedAcknowledgement() {
        guard var owed = acknowledgement, owed.term == term else { return }
        let durable = min(owed.matched, persistedIndex)
        guard durable > owed.sent else { return }
        owed.sent = durable
        acknowledgement = owed
        send(to: owed.leader, .appendResponse(.accepted(match: durable)))
    }

    private mutating func advanceCommit(to index: LogIndex) {
        guard index > commitIndex else { return }
        commitIndex = index
        commitChanged = true
    }

    /// The last index at or before `index` whose term is at most `maxTerm`, and its term; it jumps a whole term
    /// per step, using the fact that terms never decrease along the log. Below the log start it returns
    /// `firstIndex - 2` and term zero.
    private func lastIndex(
        atOrBefore index: LogIndex, termAtMost maxTerm: Term, _ log: some RaftLogReader<Payload>
    ) -> (LogIndex, Term) {
        let floor = firstIndex(log) - 1
        var index = index
        while index >= floor {
            guard let found = term(at: index, log) else { break }
            if found <= maxTerm { return (index, found) }
            // Binary search for the first index of term `found` in floor...index.
            var low = floor
            var high = index
            while low < high {
                let mid = LogIndex(low.value + (high.value - low.value) / 2)
                if let t = term(at: mid, log), t >= found { high = mid } else { low = mid + 1 }
            }
            index = low - 1
        }
        return (floor - 1, .zero)
    }

    // MARK: - Replication, leader side

    /// Takes the leader state out of `role` so that it can be changed without copying the progress table.
    private mutating func takeLeaderState() -> LeaderState {
        guard case .leader(let state) = role else { preconditionFailure("only a leader has a leader state") }
        role = .follower(leader: nil)
        return state
    }

    /// Sends what the follower lacks: one probe, or appends until the window is full, or a log reset.
    private mutating func sendAppends(to peer: NodeID, _ log: some RaftLogReader<Payload>, allowEmpty: Bool = false) {
        guard case .leader = role else { return }
        var state = takeLeaderState()
        defer { role = .leader(state) }
        guard var progress = state.progress[peer] else { return }
        defer { state.progress[peer] = progress }
        var allowEmpty = allowEmpty
        let first = firstIndex(log)
        let last = lastIndex(log)
        while true {
            switch progress.mode {
            case .resetLog: return
            case .probe(paused: true): return
            case .replicate where progress.inflightFull(configuration): return
            case .probe, .replicate: break
            }
            if progress.next < first {
                guard let prevTerm = term(at: first - 1, log) else { preconditionFailure("log start term unknown") }
                send(to: peer, .resetLog(start: first, prevTerm: prevTerm, leaderCommit: commitIndex))
                progress.mode = .resetLog(start: first)
                progress.stalledTicks = 0
                return
            }
            let entries =
                progress.next <= last
                ? overlay.entries(
                    from: progress.next, countMax: configuration.appendEntriesCountMax,
                    bytesMax: configuration.appendBytesMax, log)
                : []
            guard !entries.isEmpty || allowEmpty || progress.sentCommit < commitIndex else { return }
            allowEmpty = false
            let prevLastIndex = entries.first.map { $0.firstIndex - 1 } ?? last
            guard let prevTerm = term(at: prevLastIndex, log) else { preconditionFailure("prev term unknown") }
            send(
                to: peer,
                .append(
                    prevLastIndex: prevLastIndex, prevTerm: prevTerm, entries: entries,
                    leaderCommit: commitIndex))
            progress.sentCommit = max(progress.sentCommit, min(commitIndex, entries.last?.lastIndex ?? last))
            switch progress.mode {
            case .probe:
                progress.mode = .probe(paused: true)
                return
            case .replicate:
                guard let lastSent = entries.last else { return }
                if progress.inflights.isEmpty { progress.stalledTicks = 0 }
                let bytes = entries.reduce(0) { $0 + $1.byteCount }
                progress.inflights.append((lastSent.lastIndex, bytes))
                progress.inflightBytes += bytes
                progress.next = lastSent.lastIndex + 1
            case .resetLog:
                return
            }
        }
    }

    private mutating func handleAppendResponse(
        from peer: NodeID, _ response: AppendResponse, _ log: some RaftLogReader<Payload>
    ) -> InvalidMessage? {
        guard case .leader = role else { return nil }
        let last = lastIndex(log)
        // This leader's log only grows during its term: an answer about more than it holds was never earned.
        switch response {
        case .accepted(let match) where match > last:
            return .beyondLog("match \(match) above this leader's last index \(last)")
        case .rejected(let prevLastIndex, _, _) where prevLastIndex > last:
            return .beyondLog("a rejection of \(prevLastIndex), above this leader's last index \(last)")
        default: break
        }
        var backOff = LogIndex.none
        if case .rejected(_, let hintIndex, let hintTerm) = response {
            // Skip every entry of ours whose term is above the follower's hint: they cannot match.
            backOff = lastIndex(atOrBefore: min(hintIndex, last), termAtMost: hintTerm, log).0 + 1
        }
        var state = takeLeaderState()
        guard var progress = state.progress[peer] else {
            role = .leader(state)
            return nil
        }
        progress.recentActive = true
        var transferNow = false
        switch response {
        case .accepted(let match):
            progress.stalledTicks = 0
            progress.match = max(progress.match, match)
            progress.freeInflights(upTo: match)
            switch progress.mode {
            case .probe: progress.becomeReplicate()
            case .resetLog(let start): if progress.match >= start - 1 { progress.becomeReplicate() }
            case .replicate: progress.next = max(progress.next, progress.match + 1)
            }
            transferNow = state.transferTarget == peer && progress.match == last
            if transferNow { state.transferElapsedTicks = 0 }
        case .rejected(let prevLastIndex, _, _):
            // A rejection below what the follower already acknowledged is stale (reordered or duplicated).
            if prevLastIndex >= progress.match {
                progress.becomeProbe()
                progress.next = max(progress.match + 1, min(backOff, prevLastIndex))
            }
        }
        state.progress[peer] = progress
        role = .leader(state)
        if transferNow { send(to: peer, .timeoutNow) }
        if case .accepted = response, maybeCommit(log) { broadcastCommit(log) }
        sendAppends(to: peer, log)
        return nil
    }

    private mutating func handleHeartbeatResponse(from peer: NodeID, _ log: some RaftLogReader<Payload>) {
        guard case .leader = role else { return }
        var state = takeLeaderState()
        var probing = false
        if var progress = state.progress[peer] {
            progress.recentActive = true
            if case .probe = progress.mode {
                progress.mode = .probe(paused: false)
                probing = true
            }
            state.progress[peer] = progress
        }
        role = .leader(state)
        // A follower in probe mode has not confirmed its log position since it was last
        // heard from (it may have restarted): probe it again, even with nothing new to
        // send, or a quiet group would leave it without the commit index for good.
        if let progress = state.progress[peer], probing || progress.match < lastIndex(log) {
            sendAppends(to: peer, log, allowEmpty: probing)
        }
    }

    /// Moves the commit index to the highest index durable on a majority, if that entry is of this term.
    @discardableResult
    private mutating func maybeCommit(_ log: some RaftLogReader<Payload>) -> Bool {
        guard case .leader(let state) = role else { return false }
        var matches = configuration.voters.map { voter in
            voter == id ? persistedIndex : (state.progress[voter]?.match ?? .none)
        }
        matches.sort(by: >)
        let candidate = matches[configuration.quorum - 1]
        guard candidate > commitIndex, term(at: candidate, log) == term else { return false }
        advanceCommit(to: candidate)
        return true
    }

    /// Tells followers about a new commit index right away (an empty append where nothing else is due).
    private mutating func broadcastCommit(_ log: some RaftLogReader<Payload>) {
        for peer in peers { sendAppends(to: peer, log) }
    }

    private mutating func send(to peer: NodeID, _ kind: MessageKind<Payload>) {
        outbox.append(Message(from: id, to: peer, term: term, kind: kind))
    }
}
