// Random well-formed messages, right and wrong, fed to one node: it never traps, keeps Raft's invariants, and a
// message it drops as invalid changes nothing.
import Raft
import Simulation
import XCTest

final class InvalidMessageFuzzTests: XCTestCase {
    /// Seeds to run; `KEEL_FUZZ_SEEDS` changes it.
    private var seedCount: Int {
        ProcessInfo.processInfo.environment["KEEL_FUZZ_SEEDS"].flatMap { Int($0) } ?? 300
    }

    /// For each seed, node 1 of a 3-voter group receives 400 random inputs: messages from voters, from a
    /// stranger and to the wrong node, with terms and indexes around its own and sometimes absurd, entry chains
    /// that mostly fit its log and sometimes do not; plus ticks, campaigns and proposals. After every input:
    /// the term never goes back, one vote per term, the commit index never goes back and stays in the log, the
    /// log stays contiguous with terms that never go back, committed entries never change, and an input refused
    /// as invalid left the node exactly as it was, with nothing to do.
    func testRandomMessagesNeverTrapOrBreakInvariants() {
        var invalid = 0
        var steps = 0
        var leaderships = 0
        var reasons: [String: Int] = [:]
        for seed in 1...UInt64(seedCount) {
            var fuzz = Fuzz(seed: seed)
            for _ in 0..<400 {
                if let failure = fuzz.step() {
                    XCTFail("seed \(seed): \(failure)")
                    return
                }
            }
            invalid += fuzz.raft.invalidMessageCount
            steps += fuzz.steps
            leaderships += fuzz.leaderships
            reasons.merge(fuzz.reasons, uniquingKeysWith: +)
        }
        let breakdown = reasons.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print(
            "fuzz: \(seedCount) seeds, \(steps) messages, \(invalid) dropped as invalid (\(breakdown)), "
                + "\(leaderships) leaderships")
        XCTAssertEqual(reasons.count, 7, "every kind of invalid message occurs: \(breakdown)")
        XCTAssertGreaterThan(invalid, steps / 20, "the generator should produce plenty of invalid messages")
        XCTAssertGreaterThan(invalid, 0)
        XCTAssertLessThan(invalid, steps, "and plenty of valid ones")
        XCTAssertGreaterThan(leaderships, seedCount / 4, "the node should lead in many runs")
    }
}

/// One fuzzed node and what the checks remember about it.
private struct Fuzz {
    var random: SeededRandom
    var raft: RaftNode<SimPayload>
    var log = SimLog()
    var hardState = HardState.initial
    /// Committed entries seen so far, by last index: they must never change while the log holds them.
    var committed: [LogIndex: (first: LogIndex, term: Term, id: UInt64)] = [:]
    var nextPayloadID: UInt64 = 1
    var steps = 0
    var leaderships = 0
    /// Refusals by kind.
    var reasons: [String: Int] = [:]
    let voters = [NodeID(1), NodeID(2), NodeID(3)]

    init(seed: UInt64) {
        random = SeededRandom(seed: seed)
        raft = RaftNode(
            configuration: RaftConfiguration(id: NodeID(1), voters: voters), hardState: .initial, log: SimLog(),
            seed: seed)
    }

    mutating func uniform(_ range: ClosedRange<Int64>) -> Int64 {
        range.lowerBound + Int64(random.next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    mutating func chance(_ percent: UInt64) -> Bool { random.next() % 100 < percent }

    /// A term around the node's (mostly its own), sometimes absurd.
    mutating func someTerm() -> Term {
        let here = Int64(raft.term.value)
        switch random.next() % 40 {
        case 0: return Term(UInt64.max)
        case 1: return Term(Term.max.value + UInt64(uniform(0...1)))
        case 2...20: return raft.term
        default: return Term(UInt64(max(0, here + uniform(-1...2))))
        }
    }

    /// An index around the log, sometimes absurd.
    mutating func someIndex() -> LogIndex {
        switch random.next() % 25 {
        case 0: return LogIndex(Int64.min)
        case 1: return LogIndex(Int64.max)
        case 2: return LogIndex(LogIndex.max.value + uniform(0...1))
        default: return LogIndex(uniform(-3...(raft.lastIndex(log).value + 6)))
        }
    }

    /// An entry over `first...last` (any order), built so that `Entry.init`'s checks do not stop the test.
    mutating func entry(_ first: LogIndex, _ last: LogIndex, term: Term) -> Entry<SimPayload> {
        let records = chance(5) ? Int(uniform(1...4)) : Int(max(1, min(8, last.value &- first.value &+ 1)))
        var entry = Entry(
            term: term, firstIndex: .zero, lastIndex: .zero,
            content: .data(SimPayload(id: nextPayloadID, recordCount: records)))
        nextPayloadID += 1
        entry.firstIndex = first
        entry.lastIndex = last
        return entry
    }

    /// A term at most `limit` most of the time (a correct sender's log never holds a term above its own).
    mutating func someTerm(atMost limit: Term) -> Term {
        let term = someTerm()
        return chance(90) ? Term(min(term.value, limit.value)) : term
    }

    mutating func someKind(term messageTerm: Term) -> MessageKind<SimPayload> {
        // A helpful peer now and then, so that the node also gets to campaign and lead.
        if case .preCandidate = raft.role, chance(50) { return .preVoteResponse(granted: true) }
        if case .candidate = raft.role, chance(50) { return .voteResponse(granted: true) }
        switch random.next() % 12 {
        case 0: return .preVoteRequest(lastIndex: someIndex(), lastTerm: someTerm(atMost: messageTerm))
        case 1: return .preVoteResponse(granted: chance(70))
        case 2:
            return .voteRequest(lastIndex: someIndex(), lastTerm: someTerm(atMost: messageTerm), transfer: chance(20))
        case 3: return .voteResponse(granted: chance(70))
        case 4, 5, 6:
            // Mostly a chain that fits the log at a plausible place; sometimes broken on purpose.
            let prev = chance(80) ? LogIndex(uniform(-1...max(-1, raft.lastIndex(log).value))) : someIndex()
            let prevTerm = chance(80) ? (raft.term(at: prev, log) ?? someTerm(atMost: messageTerm)) : someTerm()
            var entries: [Entry<SimPayload>] = []
            var next = prev.value &+ 1
            var entryTerm = prevTerm
            for _ in 0..<Int(uniform(0...3)) {
                if chance(70) { entryTerm = Term(min(messageTerm.value, max(entryTerm.value, 1))) }
                if chance(20) { entryTerm = Term(entryTerm.value &+ UInt64(uniform(0...1))) }
                let length = uniform(0...2)
                let first = chance(90) ? LogIndex(next) : someIndex()
                let last = chance(95) ? LogIndex(first.value &+ length) : someIndex()
                entries.append(entry(first, last, term: chance(95) ? entryTerm : someTerm()))
                next = last.value &+ 1
            }
            let commit = chance(50) ? LogIndex(next &- 1) : someIndex()
            return .append(prevLastIndex: prev, prevTerm: prevTerm, entries: entries, leaderCommit: commit)
        case 7:
            if chance(50) { return .appendResponse(.accepted(match: someIndex())) }
            let prev = someIndex()
            return .appendResponse(
                .rejected(
                    prevLastIndex: prev, hintIndex: chance(70) ? LogIndex(prev.value &- 1) : someIndex(),
                    hintTerm: someTerm(atMost: messageTerm)))
        case 8: return .heartbeat(commit: someIndex())
        case 9: return .heartbeatResponse
        case 10:
            let start = chance(80) ? LogIndex(uniform(0...(raft.lastIndex(log).value + 4))) : someIndex()
            return .resetLog(
                start: start,
                prevTerm: chance(70)
                    ? (raft.term(at: LogIndex(start.value &- 1), log) ?? someTerm(atMost: messageTerm)) : someTerm(),
                leaderCommit: chance(70) ? LogIndex(start.value &+ uniform(-1...2)) : someIndex())
        default: return .timeoutNow
        }
    }

    /// One random input and the checks after it; the failure, if any.
    mutating func step() -> String? {
        let before = Snapshot(raft, log)
        var refused: InvalidMessage?
        switch random.next() % 10 {
        case 0: raft.tick(log: log)
        case 1 where chance(30): raft.campaign(log: log)
        case 2 where raft.isLeader: _ = try? raft.propose(SimPayload(id: nextPayloadID, recordCount: 2), log: log)
        default:
            let roll = random.next() % 100
            let from = roll < 3 ? NodeID(4) : roll < 6 ? NodeID(1) : voters[1 + Int(random.next() % 2)]
            let to = random.next() % 100 < 3 ? NodeID(2) : NodeID(1)
            var kind = someKind(term: raft.term)
            var term = someTerm()
            switch kind {
            case .preVoteResponse(granted: true) where chance(90): term = raft.term.next
            case .voteResponse(granted: true) where chance(90): term = raft.term
            case .preVoteResponse, .voteResponse: break
            default: kind = someKind(term: term)
            }
            let message = Message(from: from, to: to, term: term, kind: kind)
            steps += 1
            let count = raft.invalidMessageCount
            refused = raft.step(message, log: log)
            if (refused != nil) != (raft.invalidMessageCount == count + 1) {
                return "the invalid count does not match the refusal of \(describe(message))"
            }
            if from == NodeID(4) || from == NodeID(1) || to != NodeID(1), refused == nil {
                return "accepted \(describe(message)) from outside the group or for another node"
            }
            if let refused {
                reasons[kindName(refused), default: 0] += 1
                if Snapshot(raft, log) != before { return "\(describe(message)) refused (\(refused)) changed the node" }
                var copy = raft
                if !copy.ready().isEmpty { return "\(describe(message)) refused (\(refused)) left something to do" }
                return nil
            }
        }
        if raft.isLeader && !before.isLeader { leaderships += 1 }
        return carryOut(after: before)
    }

    func kindName(_ invalid: InvalidMessage) -> String {
        switch invalid {
        case .misrouted: "misrouted"
        case .notAVoter: "notAVoter"
        case .outOfRange: "outOfRange"
        case .malformed: "malformed"
        case .secondLeader: "secondLeader"
        case .contradictsLog: "contradictsLog"
        case .beyondLog: "beyondLog"
        }
    }

    /// Applies the node's `Ready` (everything durable at once) and checks the invariants.
    mutating func carryOut(after before: Snapshot) -> String? {
        while true {
            let ready = raft.ready()
            if ready.isEmpty { break }
            if let state = ready.hardState {
                if state.term < hardState.term { return "term went back from \(hardState.term) to \(state.term)" }
                if state.term == hardState.term, let vote = hardState.votedFor, state.votedFor != vote {
                    return "voted twice in term \(state.term)"
                }
                hardState = state
            }
            if let write = ready.logWrite {
                if let problem = log.apply(write) { return "bad log write \(describe(write)): \(problem)" }
                raft.persisted(upTo: log.lastIndex, term: log.lastTerm, log: log)
            }
        }
        if raft.commitIndex < before.commitIndex { return "commit went back to \(raft.commitIndex)" }
        if raft.commitIndex > log.lastIndex { return "commit \(raft.commitIndex) beyond the log \(describe(log))" }
        for entry in log.entries where entry.lastIndex <= raft.commitIndex {
            guard case .data(let payload) = entry.content else { continue }
            if committed[entry.lastIndex] == nil {
                committed[entry.lastIndex] = (entry.firstIndex, entry.term, payload.id)
            }
        }
        for (last, facts) in committed where last >= log.firstIndex {
            guard let k = log.position(covering: last) else { return "committed \(last) is gone: \(describe(log))" }
            let entry = log.entries[k]
            guard case .data(let payload) = entry.content, entry.lastIndex == last, entry.firstIndex == facts.first,
                entry.term == facts.term, payload.id == facts.id
            else { return "committed entry ending at \(last) changed: \(describe(log))" }
        }
        return nil
    }
}

/// What a refused message must leave as it was.
private struct Snapshot: Equatable {
    var term: Term
    var votedFor: NodeID?
    var leader: NodeID?
    var isLeader: Bool
    var role: String
    var commitIndex: LogIndex
    var lastIndex: LogIndex
    var persistedIndex: LogIndex
    var progress: [NodeID: Raft.Progress]

    init(_ raft: RaftNode<SimPayload>, _ log: SimLog) {
        term = raft.term
        votedFor = raft.votedFor
        leader = raft.leader
        isLeader = raft.isLeader
        role = "\(raft.role)"
        commitIndex = raft.commitIndex
        lastIndex = raft.lastIndex(log)
        persistedIndex = raft.persistedIndex
        if case .leader(let state) = raft.role { progress = state.progress } else { progress = [:] }
    }
}
