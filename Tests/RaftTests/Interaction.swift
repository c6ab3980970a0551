// A small interaction runner in the style of etcd-io/raft's testdata: a script of commands, each followed by the
// transcript it must produce. The world is fully deterministic: messages wait in one FIFO queue until `deliver`.
//
// Commands:
//   nodes N [inflight=K] [batch=K]     N fresh nodes (ids 1...N); K appends in flight, K entries per append
//   log ID TERMxRECORDS ... [term=T]   gives a node this log (all durable) and term T (or its last), restarts it
//   campaign ID | tick ID [COUNT]       start an election now | advance a node's clock
//   propose ID records=K | transfer ID to TARGET
//   deliver [COUNT]                    deliver queued messages (all, or the first COUNT), printing each
//   inject MESSAGE                     step a node with a message written as the transcript prints one, e.g.
//                                      `inject n2->n1 t1 append prev 4@1 [5...6@1 7@1x2] commit 6` (`xN`: the
//                                      payload's record count, when it should differ from the range's);
//                                      a message the node drops as invalid prints `n1 drops it: REASON`
//   pending | drop [A->B]              show the queue | drop all queued messages (or those on one link)
//   cut A B | cut A->B | heal          cut a link both ways or one way | restore every link
//   crash ID | restart ID              lose everything not fsynced | start again from the durable state
//   fsync manual | fsync auto | fsync ID   when writes become durable (auto: at once)
//   compact ID through INDEX           retention removes the log up to INDEX
//   status                             every node's role, term, commit index and log; a leader's progress
import Foundation
import Raft
import Simulation
import XCTest

final class Interaction {
    final class Node {
        var configuration: RaftConfiguration
        var raft: RaftNode<SimPayload>?
        var log = SimLog()
        var durableLog = SimLog()
        var hardState = HardState.initial

        init(configuration: RaftConfiguration) { self.configuration = configuration }
    }

    var nodes: [Node] = []
    var queue: [Message<SimPayload>] = []
    var blocked: [[Bool]] = []
    var autoFsync = true
    var nextPayloadID: UInt64 = 1
    var output: [String] = []

    /// Runs a script (commands start with "> ") and returns the script with each command's actual output.
    func run(_ script: String) -> String {
        var transcript: [String] = []
        for line in script.split(separator: "\n", omittingEmptySubsequences: false) where line.hasPrefix("> ") {
            transcript.append(String(line))
            output = []
            execute(line.dropFirst(2).split(separator: " ").map(String.init))
            transcript.append(contentsOf: output)
        }
        return transcript.joined(separator: "\n")
    }

    private func say(_ line: String) { output.append(line) }

    private func node(_ text: String) -> Int {
        guard let id = Int(text), id >= 1, id <= nodes.count else { fatalError("no node \(text)") }
        return id - 1
    }

    private func execute(_ words: [String]) {
        switch words[0] {
        case "nodes":
            let count = Int(words[1])!
            var inflight = 4
            var batch = 64
            for option in words.dropFirst(2) {
                let parts = option.split(separator: "=")
                if parts[0] == "inflight" { inflight = Int(parts[1])! }
                if parts[0] == "batch" { batch = Int(parts[1])! }
            }
            let voters = (1...count).map { NodeID(UInt64($0)) }
            nodes = voters.map {
                Node(
                    configuration: RaftConfiguration(
                        id: $0, voters: voters, appendEntriesCountMax: batch,
                        inflightAppendsMax: inflight))
            }
            blocked = Array(repeating: Array(repeating: false, count: count), count: count)
            for k in nodes.indices { start(k) }
        case "log":
            let k = node(words[1])
            var log = SimLog()
            var write: [Entry<SimPayload>] = []
            var next = LogIndex.zero
            var term = Term.zero
            for spec in words.dropFirst(2) {
                if spec.hasPrefix("term=") {
                    term = Term(UInt64(spec.dropFirst(5))!)
                    continue
                }
                let parts = spec.split(separator: "x")
                let records = Int(parts[1])!
                write.append(
                    Entry(
                        term: Term(UInt64(parts[0])!), firstIndex: next,
                        lastIndex: next + Int64(records - 1),
                        content: .data(SimPayload(id: nextPayloadID, recordCount: records))))
                nextPayloadID += 1
                next = next + Int64(records)
            }
            _ = log.apply(LogWrite(cut: .none, entries: write))
            nodes[k].durableLog = log
            nodes[k].hardState = HardState(term: max(term, log.lastTerm), votedFor: nil)
            start(k)
        case "campaign":
            let k = node(words[1])
            input(k) { $0.campaign(log: $1) }
        case "unreachable":
            // `unreachable 2 1`: node 2's link to node 1 closed.
            let k = node(words[1])
            let peer = NodeID(UInt64(words[2])!)
            input(k) { raft, _ in raft.peerUnreachable(peer) }
        case "tick":
            let k = node(words[1])
            let count = words.count > 2 ? Int(words[2])! : 1
            for _ in 0..<count { input(k) { $0.tick(log: $1) } }
        case "propose":
            let k = node(words[1])
            let records = Int(words[2].split(separator: "=")[1])!
            let payload = SimPayload(id: nextPayloadID, recordCount: records)
            nextPayloadID += 1
            input(k) { raft, log in
                do {
                    let range = try raft.propose(payload, log: log)
                    say("n\(k + 1) accepts \(range.lowerBound)...\(range.upperBound)")
                } catch {
                    say("n\(k + 1) refuses: \(error)")
                }
            }
        case "transfer":
            let k = node(words[1])
            let target = NodeID(UInt64(words[3])!)
            input(k) { raft, log in
                do { try raft.transferLeadership(to: target, log: log) } catch { say("n\(k + 1) refuses: \(error)") }
            }
        case "deliver":
            var budget = words.count > 1 ? Int(words[1])! : Int.max
            while budget > 0, !queue.isEmpty {
                budget -= 1
                let message = queue.removeFirst()
                let from = Int(message.from.value) - 1
                let to = Int(message.to.value) - 1
                guard nodes[to].raft != nil, !blocked[from][to] else {
                    say("dropped: \(describe(message))")
                    continue
                }
                say(describe(message))
                input(to) { $0.step(message, log: $1) }
            }
        case "inject":
            let message = parseMessage(Array(words.dropFirst()))
            let to = Int(message.to.value) - 1
            say(describe(message))
            input(to) { raft, log in
                if let invalid = raft.step(message, log: log) { say("  n\(to + 1) drops it: \(invalid)") }
            }
        case "pending":
            if queue.isEmpty { say("(none)") }
            for message in queue { say(describe(message)) }
        case "drop":
            if words.count > 1 {
                let ends = words[1].split(separator: "-").map { Int($0.trimmingCharacters(in: ["<", ">"]))! }
                queue.removeAll { Int($0.from.value) == ends[0] && Int($0.to.value) == ends[1] }
            } else {
                queue = []
            }
        case "cut":
            if words.count == 3 {
                let a = node(words[1])
                let b = node(words[2])
                blocked[a][b] = true
                blocked[b][a] = true
            } else {
                let ends = words[1].split(separator: "-").map { node($0.trimmingCharacters(in: ["<", ">"])) }
                blocked[ends[0]][ends[1]] = true
            }
        case "heal":
            blocked = blocked.map { $0.map { _ in false } }
        case "crash":
            let k = node(words[1])
            nodes[k].raft = nil
            nodes[k].log = nodes[k].durableLog
            let hardState = nodes[k].hardState
            let vote = hardState.votedFor.map { "n\($0)" } ?? "-"
            say("n\(k + 1) crashes; durable: term \(hardState.term), vote \(vote), log \(describe(nodes[k].log))")
        case "restart":
            start(node(words[1]))
        case "fsync":
            if words[1] == "manual" {
                autoFsync = false
            } else if words[1] == "auto" {
                autoFsync = true
            } else {
                let k = node(words[1])
                fsync(k)
            }
        case "compact":
            let k = node(words[1])
            let index = LogIndex(Int64(words[3])!)
            nodes[k].log.removePrefix(through: index)
            nodes[k].durableLog.removePrefix(through: index)
            say("n\(k + 1) log \(describe(nodes[k].log))")
        case "status":
            for k in nodes.indices { status(k) }
        default:
            fatalError("unknown command \(words[0])")
        }
    }

    /// Parses a message written as `describe(_:)` prints it (see `inject`); the script's own syntax, so a typo
    /// is the test's bug and stops it.
    private func parseMessage(_ words: [String]) -> Message<SimPayload> {
        func number<T: FixedWidthInteger>(_ text: some StringProtocol, _: T.Type = T.self) -> T {
            guard let value = T(text) else { fatalError("not a number: \(text) in \(words)") }
            return value
        }
        func index(_ text: some StringProtocol) -> LogIndex { LogIndex(number(text)) }
        func term(_ text: some StringProtocol) -> Term { Term(number(text)) }
        /// `I@T`.
        func position(_ text: String) -> (LogIndex, Term) {
            let parts = text.split(separator: "@", omittingEmptySubsequences: false)
            return (index(parts[0]), term(parts[1]))
        }
        let ends = words[0].split(separator: ">").map { $0.trimmingCharacters(in: ["n", "-"]) }
        let from = NodeID(number(ends[0]))
        let to = NodeID(number(ends[1]))
        let messageTerm = term(words[1].dropFirst())
        let rest = Array(words.dropFirst(2))
        let kind: MessageKind<SimPayload>
        switch (rest[0], rest[1]) {
        case ("pre-vote?", _):
            let (last, lastTerm) = position(rest[2])
            kind = .preVoteRequest(lastIndex: last, lastTerm: lastTerm)
        case ("pre-vote", let answer): kind = .preVoteResponse(granted: answer == "granted")
        case ("vote?", _):
            let (last, lastTerm) = position(rest[2])
            kind = .voteRequest(lastIndex: last, lastTerm: lastTerm, transfer: rest.count > 3)
        case ("vote", let answer): kind = .voteResponse(granted: answer == "granted")
        case ("append", "prev"):
            let (prev, prevTerm) = position(rest[2])
            var entries: [Entry<SimPayload>] = []
            var k = 3
            while true {
                let token = rest[k].trimmingCharacters(in: ["[", "]"])
                if !token.isEmpty {
                    // `A...B@T` or `A@T`, with an optional `xN` record count.
                    let parts = token.split(separator: "@")
                    let range = parts[0].components(separatedBy: "...")
                    let first = index(range[0])
                    let last = range.count > 1 ? index(range[1]) : first
                    let termAndCount = parts[1].split(separator: "x")
                    let records =
                        termAndCount.count > 1 ? number(termAndCount[1]) : Int(max(1, last.value - first.value + 1))
                    // Built as 0...0 then set, so that the script can write ranges `Entry.init` refuses.
                    var entry = Entry(
                        term: term(termAndCount[0]), firstIndex: .zero, lastIndex: .zero,
                        content: .data(SimPayload(id: nextPayloadID, recordCount: records)))
                    nextPayloadID += 1
                    entry.firstIndex = first
                    entry.lastIndex = last
                    entries.append(entry)
                }
                if rest[k].hasSuffix("]") { break }
                k += 1
            }
            kind = .append(prevLastIndex: prev, prevTerm: prevTerm, entries: entries, leaderCommit: index(rest[k + 2]))
        case ("append", "ok"): kind = .appendResponse(.accepted(match: index(rest[3])))
        case ("append", "rejected"):
            let (hint, hintTerm) = position(rest[5])
            kind = .appendResponse(.rejected(prevLastIndex: index(rest[3]), hintIndex: hint, hintTerm: hintTerm))
        case ("heartbeat", "commit"): kind = .heartbeat(commit: index(rest[2]))
        case ("heartbeat", "ok"): kind = .heartbeatResponse
        case ("reset", _):
            // reset log to start S after @T commit C
            kind = .resetLog(start: index(rest[4]), prevTerm: term(rest[6].dropFirst()), leaderCommit: index(rest[8]))
        case ("timeout", _): kind = .timeoutNow
        default: fatalError("cannot parse the message \(words)")
        }
        return Message(from: from, to: to, term: messageTerm, kind: kind)
    }

    private func start(_ k: Int) {
        let node = nodes[k]
        node.log = node.durableLog
        node.raft = RaftNode(
            configuration: node.configuration, hardState: node.hardState, log: node.log,
            seed: UInt64(k + 1))
    }

    private func status(_ k: Int) {
        let node = nodes[k]
        guard let raft = node.raft else {
            say("n\(k + 1) down")
            return
        }
        say("n\(k + 1) \(raft.role.name) term \(raft.term) commit \(raft.commitIndex) log \(describe(node.log))")
        guard case .leader(let state) = raft.role else { return }
        for peer in raft.configuration.voters where peer != raft.id {
            guard let progress = state.progress[peer] else { continue }
            say(
                "  n\(peer): match \(progress.match) next \(progress.next) \(progress.mode) "
                    + "inflight \(progress.inflightCount)")
        }
    }

    private func roleLine(_ raft: RaftNode<SimPayload>) -> String {
        switch raft.role {
        case .follower(let leader): return "follower in term \(raft.term)" + (leader.map { ", leader n\($0)" } ?? "")
        case .preCandidate: return "pre-candidate in term \(raft.term)"
        case .candidate: return "candidate in term \(raft.term)"
        case .leader: return "leader in term \(raft.term)"
        }
    }

    /// Calls into one node, then carries out its `Ready` (hard state, log write, messages, commit) and prints
    /// what changed.
    private func input(_ k: Int, _ call: (inout RaftNode<SimPayload>, SimLog) -> Void) {
        guard var raft = nodes[k].raft else { return }
        let before = roleLine(raft)
        call(&raft, nodes[k].log)
        nodes[k].raft = raft
        let after = roleLine(raft)
        if after != before { say("  n\(k + 1) becomes \(after)") }
        handleReady(k)
    }

    private func handleReady(_ k: Int) {
        let node = nodes[k]
        guard var raft = node.raft else { return }
        let ready = raft.ready()
        node.raft = raft
        if let hardState = ready.hardState { node.hardState = hardState }
        if let write = ready.logWrite {
            if let problem = node.log.apply(write) { XCTFail("n\(k + 1): \(problem)") }
            say("  n\(k + 1) writes \(describe(write))")
        }
        queue.append(contentsOf: ready.messages)
        if let commit = ready.commitIndex { say("  n\(k + 1) commits up to \(commit)") }
        if ready.logWrite != nil && autoFsync { fsync(k) }
    }

    private func fsync(_ k: Int) {
        let node = nodes[k]
        guard var raft = node.raft else { return }
        node.durableLog = node.log
        raft.persisted(upTo: node.log.lastIndex, term: node.log.lastTerm, log: node.log)
        node.raft = raft
        handleReady(k)
    }
}

/// Runs a script and compares the transcript; on a mismatch it prints the actual transcript to paste back.
func checkScript(_ script: String, file: StaticString = #filePath, line: UInt = #line) {
    let expected = script.split(separator: "\n", omittingEmptySubsequences: true)
        .map { $0.trimmingCharacters(in: .whitespaces) == "" ? "" : String($0) }
        .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        .joined(separator: "\n")
    let actual = Interaction().run(script)
    if let directory = ProcessInfo.processInfo.environment["KEEL_TRANSCRIPTS"] {
        // Maintainers' aid: dump the actual transcript to review it and paste it back into the test.
        let name = "\(directory)/\(("\(file)" as NSString).lastPathComponent):\(line)"
        try? actual.write(toFile: name, atomically: true, encoding: .utf8)
    }
    if actual != expected {
        print("---- actual transcript ----\n\(actual)\n---- end ----")
    }
    XCTAssertEqual(actual, expected, file: file, line: line)
}
