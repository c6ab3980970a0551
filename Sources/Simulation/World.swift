// The world of one run: nodes, network, disk, faults, clients, and the invariant checkers.
import Raft

/// What the checkers remember about one committed offset.
struct CommittedRecord {
    var term: Term
    var lastIndex: LogIndex
    var content: UInt64
    /// The lowest term in which any node saw it committed: every leader of a later term must hold it.
    var commitTerm: Term
}

/// The identity of an entry: its last index and its term.
struct EntryKey: Hashable {
    var lastIndex: LogIndex
    var term: Term
}

/// What any entry with a given key must look like on every node.
struct EntryFacts: Equatable {
    var firstIndex: LogIndex
    var content: UInt64
    var prevTerm: Term
}

final class World {
    let seed: UInt64
    /// The options with this seed's fault profile applied.
    var options: SimulationOptions
    let trace: ((String) -> Void)?
    var random: SeededRandom
    var nodes: [SimNode]
    var queue = EventQueue()
    var now = 0
    /// `blocked[from][to]`: the link from one node to another is cut.
    var blocked: [[Bool]]
    var calm = false
    /// In the calm phase, the tick of the last message scheduled on each link (`from * n + to`).
    var linkClearTick: [Int] = []
    /// Whether this seed lets inputs pile up before carrying out a `Ready` (see `process`).
    var batchReadies = false
    /// Entries per append for this seed: small values split a backlog over many messages.
    var appendEntriesCountMax = 8
    var result: SimulationResult
    var nextPayloadID: UInt64 = 1

    var leaders: [Term: NodeID] = [:]
    var committed: [CommittedRecord?] = []
    var registry: [EntryKey: EntryFacts] = [:]

    init(seed: UInt64, options: SimulationOptions, trace: ((String) -> Void)?) {
        precondition(options.nodeCount >= 1, "a group needs a node")
        self.seed = seed
        self.options = options
        self.trace = trace
        random = SeededRandom(seed: seed)
        nodes = (1...options.nodeCount).map { SimNode(id: NodeID(UInt64($0))) }
        blocked = Array(repeating: Array(repeating: false, count: options.nodeCount), count: options.nodeCount)
        result = SimulationResult(seed: seed)
        let base = options
        if options.varyFaultsPerSeed {
            // Each seed draws its own weather, from calm to stormy, up to the given maxima.
            self.options.lossPercentPerMessage = uniform(0...base.lossPercentPerMessage)
            self.options.duplicatePercentPerMessage = uniform(0...base.duplicatePercentPerMessage)
            self.options.delayTicksMax = uniform(1...base.delayTicksMax)
            self.options.fsyncDelayTicksMax = uniform(0...base.fsyncDelayTicksMax)
            self.options.crashPercentPerTick = uniform(0...base.crashPercentPerTick)
            self.options.downTicksMax = uniform(1...base.downTicksMax)
            self.options.partitionPercentPerTick = uniform(0...base.partitionPercentPerTick)
            self.options.proposePercentPerTick = uniform(5...base.proposePercentPerTick)
            self.options.retentionPercentPerTick = uniform(0...base.retentionPercentPerTick)
        }
        batchReadies = chance(50)
        appendEntriesCountMax = uniform(1...8)
        for k in nodes.indices { start(k) }
    }

    func run() {
        do {
            for _ in 0..<options.faultTicks { try advance(faults: true) }
            try livenessPhase()
        } catch {
            result.failure = "tick \(now): \(error.message)"
            log("FAILURE \(error.message)")
        }
        result.ticks = now
    }

    // MARK: - Helpers

    func chance(_ percent: Int) -> Bool { percent > 0 && Int(random.next() % 100) < percent }

    func uniform(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(random.next() % UInt64(range.upperBound - range.lowerBound + 1))
    }

    func log(_ line: @autoclosure () -> String) {
        if let trace { trace("t=\(now) \(line())") }
    }

    func configuration(_ id: NodeID) -> RaftConfiguration {
        RaftConfiguration(
            id: id, voters: nodes.map(\.id), electionTimeoutTicksMin: 10, electionTimeoutTicksMax: 20,
            heartbeatIntervalTicks: 2, appendEntriesCountMax: appendEntriesCountMax, appendBytesMax: 1000,
            inflightAppendsMax: options.inflightAppendsMax, appendRetryTicks: 10)
    }

    func index(of id: NodeID) -> Int { Int(id.value) - 1 }

    /// Raft is live only while messages and fsyncs are much faster than the election timeout: the liveness
    /// phase caps both delays at 3 ticks (the election timeout is 10 to 20).
    var delayTicksMax: Int { calm ? min(options.delayTicksMax, 3) : options.delayTicksMax }
    var fsyncDelayTicksMax: Int { calm ? min(options.fsyncDelayTicksMax, 3) : options.fsyncDelayTicksMax }

    // MARK: - Time

    func advance(faults: Bool) throws(InvariantViolation) {
        if faults { try injectFaults() }
        for k in nodes.indices where nodes[k].restartAt == now { start(k) }
        for k in nodes.indices {
            guard var raft = nodes[k].raft else { continue }
            raft.tick(log: nodes[k].log)
            nodes[k].raft = raft
            try process(k)
        }
        while let time = queue.nextTime, time <= now {
            switch queue.pop() {
            case .deliver(let message): try deliver(message)
            case .sync(let k, let incarnation): try sync(k, incarnation: incarnation)
            }
        }
        for k in nodes.indices { try processNow(k) }
        now += 1
    }

    func start(_ k: Int) {
        let node = nodes[k]
        node.restartAt = nil
        node.log = node.durableLog
        node.commitIndex = .none
        node.raft = RaftNode(
            configuration: configuration(node.id), hardState: node.durableHardState, log: node.log,
            seed: seed &* 0x9E37_79B9 &+ UInt64(k) &* 1000 &+ UInt64(node.incarnation))
        log("n\(node.id) starts: term \(node.durableHardState.term), log \(describe(node.log))")
    }

    func crash(_ k: Int) {
        let node = nodes[k]
        node.raft = nil
        node.incarnation += 1
        node.syncPending = false
        node.log = node.durableLog
        node.restartAt = now + uniform(1...options.downTicksMax)
        log("n\(node.id) crashes; durable: term \(node.durableHardState.term), log \(describe(node.log))")
    }

    // MARK: - Faults and clients

    func injectFaults() throws(InvariantViolation) {
        if chance(options.crashPercentPerTick) {
            let up = nodes.indices.filter { nodes[$0].raft != nil }
            if !up.isEmpty { crash(up[uniform(0...up.count - 1)]) }
        }
        if chance(options.partitionPercentPerTick) { changeNetwork() }
        if chance(options.proposePercentPerTick) { try propose(records: uniform(1...5)) }
        if chance(options.transferPercentPerTick), let k = currentLeader(), nodes.count > 1 {
            var target = uniform(0...nodes.count - 2)
            if target >= k { target += 1 }
            var raft = nodes[k].raft!
            let outcome = Result { () throws(TransferError) in
                try raft.transferLeadership(to: nodes[target].id, log: nodes[k].log)
            }
            nodes[k].raft = raft
            log("n\(nodes[k].id) transfers leadership to n\(nodes[target].id): \(outcome)")
            try process(k)
        }
        if chance(options.retentionPercentPerTick) { try applyRetention(uniform(0...nodes.count - 1)) }
    }

    func changeNetwork() {
        let n = nodes.count
        switch uniform(0...3) {
        case 0:
            blocked = Array(repeating: Array(repeating: false, count: n), count: n)
            log("network heals")
        case 1:
            let side = (0..<n).map { _ in chance(50) }
            for a in 0..<n { for b in 0..<n { blocked[a][b] = side[a] != side[b] } }
            log("network splits: \((0..<n).filter { side[$0] }.map { "n\($0 + 1)" }) | others")
        case 2:
            let a = uniform(0...n - 1)
            let b = uniform(0...n - 1)
            if a != b { blocked[a][b] = true }
            log("link n\(a + 1) -> n\(b + 1) cut (one way)")
        default:
            let a = uniform(0...n - 1)
            for b in 0..<n where b != a {
                blocked[a][b] = true
                blocked[b][a] = true
            }
            log("n\(a + 1) isolated")
        }
    }

    /// A client sends a batch to a random node; a follower redirects it to the leader it knows of.
    func propose(records: Int) throws(InvariantViolation) {
        var k = uniform(0...nodes.count - 1)
        if let raft = nodes[k].raft, !raft.isLeader, let leader = raft.leader { k = index(of: leader) }
        guard var raft = nodes[k].raft else { return }
        let payload = SimPayload(id: nextPayloadID, recordCount: records)
        nextPayloadID += 1
        do {
            let range = try raft.propose(payload, log: nodes[k].log)
            log("n\(nodes[k].id) accepts batch #\(payload.id) at \(range.lowerBound)...\(range.upperBound)")
        } catch {
            log("n\(nodes[k].id) refuses batch #\(payload.id): \(error)")
        }
        nodes[k].raft = raft
        try process(k)
    }

    /// Retention on one node: removes a committed, durable prefix (only when nothing is waiting for an fsync).
    func applyRetention(_ k: Int) throws(InvariantViolation) {
        try processNow(k)
        let node = nodes[k]
        guard let raft = node.raft, !node.syncPending else { return }
        let limit = min(raft.commitIndex, node.log.lastIndex)
        let candidates = node.log.entries.prefix { $0.lastIndex <= limit }
        guard !candidates.isEmpty else { return }
        // Aggressive on purpose: keep only a few recent batches, so lagging followers fall behind the log start.
        let through = candidates[uniform(max(0, candidates.count - 8)...candidates.count - 1)].lastIndex
        node.log.removePrefix(through: through)
        node.durableLog.removePrefix(through: through)
        log("n\(node.id) retention removes the log up to \(through)")
    }

    func currentLeader() -> Int? {
        var best: Int?
        for k in nodes.indices {
            guard let raft = nodes[k].raft, raft.isLeader else { continue }
            if best == nil || raft.term > nodes[best!].raft!.term { best = k }
        }
        return best
    }

    // MARK: - Network and disk

    func send(_ message: Message<SimPayload>) {
        if !calm && chance(options.lossPercentPerMessage) {
            log("lost: \(describe(message))")
            return
        }
        var time = now + uniform(1...delayTicksMax)
        if calm {
            // A healed network behaves like Keel's one TCP connection per node pair: each link delivers in order.
            let link = index(of: message.from) * nodes.count + index(of: message.to)
            time = max(time, linkClearTick[link])
            linkClearTick[link] = time
        }
        queue.push(.deliver(message), at: time)
        if !calm && chance(options.duplicatePercentPerMessage) {
            queue.push(.deliver(message), at: now + uniform(1...delayTicksMax))
        }
    }

    func deliver(_ message: Message<SimPayload>) throws(InvariantViolation) {
        let from = index(of: message.from)
        let to = index(of: message.to)
        guard var raft = nodes[to].raft, !blocked[from][to] else {
            log("dropped: \(describe(message))")
            return
        }
        log(describe(message))
        // The simulated network loses, duplicates, delays and reorders, but every message was sent by a correct
        // node: the core must never take one for invalid.
        if let invalid = raft.step(message, log: nodes[to].log) {
            throw InvariantViolation(message: "n\(message.to) dropped \(describe(message)) as invalid: \(invalid)")
        }
        nodes[to].raft = raft
        try process(to)
    }

    func sync(_ k: Int, incarnation: Int) throws(InvariantViolation) {
        let node = nodes[k]
        guard node.incarnation == incarnation, var raft = node.raft else { return }
        node.syncPending = false
        node.durableLog = node.log
        log("n\(node.id) fsync: durable up to \(node.log.lastIndex)")
        raft.persisted(upTo: node.log.lastIndex, term: node.log.lastTerm, log: node.log)
        node.raft = raft
        try process(k)
    }

    /// After an input: carries out the node's `Ready` now, or (when this seed batches) sometimes later, so that
    /// several inputs pile up in the core before the shell acts, as a busy shell would let them.
    func process(_ k: Int) throws(InvariantViolation) {
        if batchReadies && chance(60) { return }
        try processNow(k)
    }

    /// Carries out a node's `Ready` in the order the core requires, checking every invariant on the way.
    func processNow(_ k: Int) throws(InvariantViolation) {
        let node = nodes[k]
        guard var raft = node.raft else { return }
        let ready = raft.ready()
        node.raft = raft
        if trace != nil {
            let role = "\(raft.role.name) in term \(raft.term)"
            if role != node.tracedRole { log("n\(node.id) is now \(role)") }
            node.tracedRole = role
        }
        if let hardState = ready.hardState {
            let old = node.durableHardState
            guard hardState.term >= old.term else {
                throw InvariantViolation(message: "n\(node.id) term went back from \(old.term) to \(hardState.term)")
            }
            if hardState.term == old.term, let vote = old.votedFor, hardState.votedFor != vote {
                throw InvariantViolation(message: "n\(node.id) voted twice in term \(old.term)")
            }
            node.durableHardState = hardState  // durable before any message leaves
            log("n\(node.id) hard state: term \(hardState.term), vote \(hardState.votedFor.map { "n\($0)" } ?? "-")")
        }
        if let write = ready.logWrite {
            if let problem = node.log.apply(write) { throw InvariantViolation(message: "n\(node.id): \(problem)") }
            log("n\(node.id) writes \(describe(write)) -> \(describe(node.log))")
            try register(write.entries, in: node)
            if !node.syncPending {
                node.syncPending = true
                queue.push(
                    .sync(node: k, incarnation: node.incarnation), at: now + uniform(0...fsyncDelayTicksMax))
            }
        }
        for message in ready.messages { send(message) }
        if let commit = ready.commitIndex { try checkCommit(node, to: commit, term: raft.term) }
        if raft.isLeader { try checkLeader(node, raft) }
    }

    // MARK: - Invariants

    /// Log matching: an entry with the same last index and term has the same range, content and predecessor on
    /// every node, hence (by induction) the same prefix.
    func register(_ entries: [Entry<SimPayload>], in node: SimNode) throws(InvariantViolation) {
        for entry in entries {
            guard let prevTerm = node.log.term(at: entry.firstIndex - 1) else {
                throw InvariantViolation(message: "n\(node.id): no term before \(entry.firstIndex)")
            }
            let facts = EntryFacts(firstIndex: entry.firstIndex, content: contentID(entry), prevTerm: prevTerm)
            let key = EntryKey(lastIndex: entry.lastIndex, term: entry.term)
            if let known = registry[key] {
                guard known == facts else {
                    throw InvariantViolation(
                        message: "log matching: n\(node.id) holds \(describe(entry)) after term \(prevTerm), "
                            + "elsewhere it starts at \(known.firstIndex) with #\(known.content) "
                            + "after term \(known.prevTerm)")
                }
            } else {
                registry[key] = facts
            }
        }
    }

    func contentID(_ entry: Entry<SimPayload>) -> UInt64 {
        switch entry.content {
        case .data(let payload): return payload.id
        case .leaderChange: return 0
        }
    }

    /// Commit index never moves back; committed entries never change; later leaders hold them.
    func checkCommit(_ node: SimNode, to commit: LogIndex, term: Term) throws(InvariantViolation) {
        guard commit > node.commitIndex else {
            throw InvariantViolation(
                message: "n\(node.id) commit index moved back from \(node.commitIndex) to \(commit)")
        }
        guard commit <= node.log.lastIndex else {
            throw InvariantViolation(
                message: "n\(node.id) commits \(commit) beyond its last index \(node.log.lastIndex)")
        }
        let from = max(node.commitIndex + 1, node.log.firstIndex)
        node.commitIndex = commit
        log("n\(node.id) commits up to \(commit)")
        guard from <= commit, var position = node.log.position(covering: from) else { return }
        var fresh: [Int64] = []
        while position < node.log.entries.count, node.log.entries[position].lastIndex <= commit {
            let entry = node.log.entries[position]
            for offset in max(from, entry.firstIndex).value...entry.lastIndex.value {
                let record = CommittedRecord(
                    term: entry.term, lastIndex: entry.lastIndex, content: contentID(entry),
                    commitTerm: term)
                while committed.count <= Int(offset) { committed.append(nil) }
                if let known = committed[Int(offset)] {
                    guard known.term == record.term, known.lastIndex == record.lastIndex,
                        known.content == record.content
                    else {
                        throw InvariantViolation(
                            message: "committed offset \(offset) changed: n\(node.id) commits "
                                + "\(describe(entry)), before it was #\(known.content) of term \(known.term)")
                    }
                    if term < known.commitTerm { committed[Int(offset)]!.commitTerm = term }
                } else {
                    committed[Int(offset)] = record
                    fresh.append(offset)
                    if offset == entry.lastIndex.value { result.commits += 1 }
                }
            }
            position += 1
        }
        // Leader completeness for what was just committed: every leader of a later term must already hold it.
        for other in nodes {
            guard let raft = other.raft, raft.isLeader, raft.term > term else { continue }
            for offset in fresh { try checkHolds(other, offset: offset) }
        }
    }

    func checkHolds(_ node: SimNode, offset: Int64) throws(InvariantViolation) {
        guard let record = committed[Int(offset)], LogIndex(offset) >= node.log.firstIndex else { return }
        guard let position = node.log.position(covering: LogIndex(offset)),
            node.log.entries[position].term == record.term,
            node.log.entries[position].lastIndex == record.lastIndex,
            contentID(node.log.entries[position]) == record.content
        else {
            throw InvariantViolation(
                message: "leader completeness: leader n\(node.id) lacks committed offset "
                    + "\(offset) (#\(record.content) of term \(record.term), committed in term \(record.commitTerm))")
        }
    }

    /// One leader per term; a new leader holds every entry committed in an earlier term.
    func checkLeader(_ node: SimNode, _ raft: RaftNode<SimPayload>) throws(InvariantViolation) {
        if let known = leaders[raft.term] {
            guard known == node.id else {
                throw InvariantViolation(message: "two leaders in term \(raft.term): n\(known) and n\(node.id)")
            }
            return
        }
        leaders[raft.term] = node.id
        result.elections += 1
        log("n\(node.id) becomes leader of term \(raft.term) with log \(describe(node.log))")
        // The no-op rule: one LEADER_CHANGE entry exactly when the log extends past the commit index, so a fresh
        // partition starts at offset 0 with data and a quiet failover leaves no gap in the offsets.
        if let last = node.log.entries.last, last.term == raft.term, case .leaderChange = last.content {
            guard last.firstIndex - 1 > raft.commitIndex else {
                throw InvariantViolation(
                    message: "n\(node.id) appended a leader-change entry over a fully committed log")
            }
        } else if node.log.lastIndex != raft.commitIndex {
            throw InvariantViolation(
                message: "n\(node.id) leads term \(raft.term) over an uncommitted tail without a leader-change entry")
        }
        for offset in committed.indices {
            guard let record = committed[offset], record.commitTerm < raft.term else { continue }
            try checkHolds(node, offset: Int64(offset))
        }
    }

    // MARK: - Liveness

    func livenessPhase() throws(InvariantViolation) {
        calm = true
        blocked = Array(repeating: Array(repeating: false, count: nodes.count), count: nodes.count)
        for k in nodes.indices where nodes[k].raft == nil { start(k) }
        linkClearTick = Array(repeating: 0, count: nodes.count * nodes.count)
        log("liveness phase: all nodes up, network healed, no more faults")
        let startTick = now
        // A node that was away for long must first catch up: allow one slow round trip (9 ticks) per window of
        // appends it lacks, on top of the fixed budget.
        let longest = nodes.max { $0.log.lastIndex < $1.log.lastIndex }!.log
        let lagEntries = nodes.map { node in longest.entries.count { $0.lastIndex > node.log.lastIndex } }.max() ?? 0
        let windowEntries = appendEntriesCountMax * options.inflightAppendsMax
        let budget = options.livenessTicksMax + 9 * ((lagEntries + windowEntries - 1) / windowEntries)
        var elected = false
        var proposal: (id: UInt64, last: LogIndex, leader: Int, term: Term)?
        while now - startTick < budget {
            try advance(faults: false)
            guard let k = currentLeader(), var raft = nodes[k].raft else { continue }
            if !elected {
                elected = true
                result.ticksToElect = now - startTick
            }
            if let proposal, committed.count > Int(proposal.last.value),
                committed[Int(proposal.last.value)]?.content == proposal.id,
                nodes.allSatisfy({ ($0.raft?.commitIndex ?? .none) >= proposal.last })
            {
                result.ticksToCommitEverywhere = now - startTick
                return
            }
            if proposal == nil || (proposal!.term != raft.term && !holds(nodes[k], proposal!.id, proposal!.last)) {
                let payload = SimPayload(id: nextPayloadID, recordCount: 2)
                nextPayloadID += 1
                if let range = try? raft.propose(payload, log: nodes[k].log) {
                    proposal = (payload.id, range.upperBound, k, raft.term)
                    log("n\(nodes[k].id) accepts the liveness batch #\(payload.id) at \(range.upperBound)")
                }
                nodes[k].raft = raft
                try process(k)
            }
        }
        let status = nodes.map { node in
            guard let raft = node.raft else { return "n\(node.id) down" }
            return
                "n\(node.id) \(raft.role.name) term \(raft.term) commit \(raft.commitIndex) log \(describe(node.log))"
        }
        throw InvariantViolation(
            message: "liveness: no batch committed on every node within "
                + "\(budget) ticks after healing (elected: \(elected)); "
                + status.joined(separator: "; "))
    }

    func holds(_ node: SimNode, _ id: UInt64, _ last: LogIndex) -> Bool {
        guard let position = node.log.position(covering: last) else { return false }
        return contentID(node.log.entries[position]) == id
    }
}

extension Role {
    /// A short name for traces.
    public var name: String {
        switch self {
        case .follower: return "follower"
        case .preCandidate: return "pre-candidate"
        case .candidate: return "candidate"
        case .leader: return "leader"
        }
    }
}
