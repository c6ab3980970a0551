// Short, readable descriptions of messages, entries and logs, for traces and transcripts.
import Raft

/// `3...5@2` (records 3 to 5, term 2), `7@3 LC` for a leader-change no-op.
public func describe<P: RaftPayload>(_ entry: Entry<P>) -> String {
    let range =
        entry.firstIndex == entry.lastIndex
        ? "\(entry.firstIndex)" : "\(entry.firstIndex)...\(entry.lastIndex)"
    switch entry.content {
    case .data: return "\(range)@\(entry.term)"
    case .leaderChange: return "\(range)@\(entry.term) LC"
    }
}

/// A log as `[start 0] 0...2@1 3@2 LC`.
public func describe(_ log: SimLog) -> String {
    let start = log.firstIndex == .zero ? "" : "[start \(log.firstIndex) after @\(log.startPrevTerm)] "
    if log.entries.isEmpty { return start + "empty" }
    return start + log.entries.map { describe($0) }.joined(separator: " ")
}

/// A log write as `cut after 4, + 5...6@2`.
public func describe<P: RaftPayload>(_ write: LogWrite<P>) -> String {
    var parts: [String] = []
    switch write.cut {
    case .none: break
    case .truncateAfter(let index): parts.append("truncate after \(index)")
    case .reset(let start, let prevTerm): parts.append("reset to start \(start) after @\(prevTerm)")
    }
    if !write.entries.isEmpty { parts.append("append " + write.entries.map { describe($0) }.joined(separator: " ")) }
    return parts.joined(separator: ", ")
}

/// `n1->n2 t3 append prev 4@2 [5...6@3] commit 4`.
public func describe<P: RaftPayload>(_ message: Message<P>) -> String {
    let head = "n\(message.from)->n\(message.to) t\(message.term) "
    switch message.kind {
    case .preVoteRequest(let lastIndex, let lastTerm):
        return head + "pre-vote? last \(lastIndex)@\(lastTerm)"
    case .preVoteResponse(let granted):
        return head + (granted ? "pre-vote granted" : "pre-vote refused")
    case .voteRequest(let lastIndex, let lastTerm, let transfer):
        return head + "vote? last \(lastIndex)@\(lastTerm)" + (transfer ? " (transfer)" : "")
    case .voteResponse(let granted):
        return head + (granted ? "vote granted" : "vote refused")
    case .append(let prevLastIndex, let prevTerm, let entries, let leaderCommit):
        let list = entries.map { describe($0) }.joined(separator: " ")
        return head + "append prev \(prevLastIndex)@\(prevTerm) [\(list)] commit \(leaderCommit)"
    case .appendResponse(.accepted(let match)):
        return head + "append ok match \(match)"
    case .appendResponse(.rejected(let prevLastIndex, let hintIndex, let hintTerm)):
        return head + "append rejected prev \(prevLastIndex) hint \(hintIndex)@\(hintTerm)"
    case .heartbeat(let commit):
        return head + "heartbeat commit \(commit)"
    case .heartbeatResponse:
        return head + "heartbeat ok"
    case .resetLog(let start, let prevTerm, let leaderCommit):
        return head + "reset log to start \(start) after @\(prevTerm) commit \(leaderCommit)"
    case .timeoutNow:
        return head + "timeout now"
    }
}
