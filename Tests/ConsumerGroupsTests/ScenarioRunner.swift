import Foundation
import KafkaProtocol
import NIOCore
import XCTest

@testable import ConsumerGroups

/// A tiny interaction runner in the manner of etcd-io/raft's `testdata`: a script of `> command` lines, each
/// followed by the transcript lines it must produce. The runner plays the host: it hands out request tokens
/// per client name, keeps the simulated clock, appends records to an in-memory `__consumer_offsets` log, and
/// (unless told to `hold`) commits them at once, releasing the replies that wait for the commit.
///
/// Commands (`key=value` arguments; `group` defaults to `g`):
/// - `join C [member=M] [instance=I] [session=ms] [rebalance=ms] [protocols=a,b] [type=T] [meta=S]`
/// - `sync C member=M gen=N [instance=I] [assign=M1:A1,M2:A2]`
/// - `heartbeat C member=M gen=N`, `leave C member=M`
/// - `commit C [member=M] [gen=N] offsets=T:P=O,... [metadata=S]` (`metadata=x*4097`: 4097 x's)
/// - `fetch C [partitions=T:P,...]` (all when absent), `describe C groups=G,...`, `list C`, `delete C groups=G,...`
/// - `tick MS` (advance the clock by MS and fire timers), `hold`, `release`
/// - `reload [finish=no]` (a new coordinator replays the log; `finish=no` leaves it loading), `loaded`
/// - `dump` (every group's internal state and offsets)
struct ScenarioRunner {
    var coordinator: GroupCoordinator
    var now: Milliseconds = 0
    var nextToken: UInt64 = 0
    var clients: [RequestToken: String] = [:]
    var log: [GroupRecord] = []
    var holding = false
    var held: [GroupAppend] = []
    let config: GroupCoordinatorConfig

    init(config: GroupCoordinatorConfig = GroupCoordinatorConfig()) {
        self.config = config
        self.coordinator = GroupCoordinator(config: config)
    }

    /// Runs `script` and returns the transcript it produces (commands, comments and outputs).
    mutating func transcript(of script: String) -> String {
        var out: [String] = []
        for line in script.split(separator: "\n", omittingEmptySubsequences: false) {
            let text = String(line)
            if text.hasPrefix("> ") {
                out.append(text)
                out.append(contentsOf: run(String(text.dropFirst(2))))
            } else if text.hasPrefix("#") || text.trimmingCharacters(in: .whitespaces).isEmpty {
                out.append(text)
            }
        }
        return out.joined(separator: "\n")
    }

    mutating func token(for client: String) -> RequestToken {
        nextToken += 1
        let token = RequestToken(nextToken)
        clients[token] = client
        return token
    }

    mutating func run(_ command: String) -> [String] {
        let words = command.split(separator: " ").map(String.init)
        guard let verb = words.first else { return ["error: empty command"] }
        let client = words.count > 1 && !words[1].contains("=") ? words[1] : ""
        var args: [String: String] = [:]
        for word in words.dropFirst() where word.contains("=") {
            let parts = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            args[String(parts[0])] = String(parts[1])
        }
        let group = args["group"] ?? "g"
        let member = (args["member"] ?? "").replacingOccurrences(of: "\"", with: "")
        let generation = Int32(args["gen"] ?? "-1") ?? -1
        let effects: GroupEffects
        switch verb {
        case "join":
            let names = (args["protocols"] ?? "range").split(separator: ",").map(String.init)
            let meta = args["meta"] ?? client
            let session = Int32(args["session"] ?? "10000") ?? 0
            let request = JoinGroupRequest(
                groupId: group,
                sessionTimeoutMs: session,
                rebalanceTimeoutMs: Int32(args["rebalance"] ?? "\(session)") ?? 0,
                memberId: member,
                groupInstanceId: args["instance"],
                protocolType: args["type"] ?? "consumer",
                protocols: names.map { .init(name: $0, metadata: ByteBuffer(string: meta)) }
            )
            effects = coordinator.join(token(for: client), request, clientId: client, clientHost: "/10.0.0.1", now: now)
        case "sync":
            let assignments = (args["assign"] ?? "").split(separator: ",").map { pair in
                let parts = pair.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                return SyncGroupRequest.Assignment(
                    memberId: String(parts[0]),
                    assignment: ByteBuffer(string: parts.count > 1 ? String(parts[1]) : "")
                )
            }
            let request = SyncGroupRequest(
                groupId: group,
                generationId: generation,
                memberId: member,
                groupInstanceId: args["instance"],
                assignments: assignments
            )
            effects = coordinator.sync(token(for: client), request, now: now)
        case "heartbeat":
            let request = HeartbeatRequest(groupId: group, generationId: generation, memberId: member)
            effects = coordinator.heartbeat(token(for: client), request, now: now)
        case "leave":
            effects = coordinator.leave(
                token(for: client), LeaveGroupRequest(groupId: group, memberId: member), now: now)
        case "commit":
            var topics: [OffsetCommitRequest.Topic] = []
            for item in (args["offsets"] ?? "").split(separator: ",") {
                let (topic, partition, value) = Self.topicPartitionValue(String(item))
                let entry = OffsetCommitRequest.Topic.Partition(
                    partitionIndex: partition,
                    committedOffset: value,
                    committedMetadata: args["metadata"].map(Self.expand)
                )
                if topics.last?.name == topic {
                    topics[topics.count - 1].partitions.append(entry)
                } else {
                    topics.append(.init(name: topic, partitions: [entry]))
                }
            }
            let request = OffsetCommitRequest(
                groupId: group,
                generationId: generation,
                memberId: member,
                retentionTimeMs: -1,
                topics: topics
            )
            effects = coordinator.offsetCommit(token(for: client), request, now: now)
        case "fetch":
            var topics: [OffsetFetchRequest.Topic]?
            if let list = args["partitions"] {
                var asked: [OffsetFetchRequest.Topic] = []
                for item in list.split(separator: ",") {
                    let parts = item.split(separator: ":")
                    let partition = Int32(parts.count > 1 ? String(parts[1]) : "0") ?? 0
                    if asked.last?.name == String(parts[0]) {
                        asked[asked.count - 1].partitionIndexes.append(partition)
                    } else {
                        asked.append(.init(name: String(parts[0]), partitionIndexes: [partition]))
                    }
                }
                topics = asked
            }
            effects = coordinator.offsetFetch(token(for: client), OffsetFetchRequest(groupId: group, topics: topics))
        case "describe":
            let groups = (args["groups"] ?? group).split(separator: ",").map(String.init)
            let request = DescribeGroupsRequest(groups: groups, includeAuthorizedOperations: false)
            effects = coordinator.describe(token(for: client), request)
        case "list":
            effects = coordinator.list(token(for: client), ListGroupsRequest())
        case "delete":
            let groups = (args["groups"] ?? group).split(separator: ",", omittingEmptySubsequences: false)
            effects = coordinator.deleteGroups(token(for: client), groups.map(String.init))
        case "tick":
            now += Int64(client) ?? 0
            effects = coordinator.tick(now: now)
        case "hold":
            holding = true
            return []
        case "release":
            holding = false
            var lines: [String] = []
            for append in held {
                log += append.records
                lines.append("committed \(append.records.count) record(s) of \(append.groupId)")
                lines += append.repliesOnCommit.map(render)
            }
            held = []
            return lines
        case "reload":
            var fresh = GroupCoordinator(config: config, memberIdSeed: "r\(nextToken)", loading: true)
            do {
                try fresh.load(log)
            } catch {
                return ["load error: \(error)"]
            }
            if args["finish"] != "no" { fresh.finishLoading(now: now) }
            coordinator = fresh
            return ["reloaded \(log.count) records"]
        case "loaded":
            coordinator.finishLoading(now: now)
            return []
        case "dump":
            return dump()
        default:
            return ["error: unknown command \(verb)"]
        }
        return render(effects)
    }

    /// `x*3` → `xxx`; anything else as it is.
    static func expand(_ text: String) -> String {
        let parts = text.split(separator: "*")
        guard parts.count == 2, let count = Int(parts[1]) else { return text }
        return String(repeating: String(parts[0]), count: count)
    }

    static func topicPartitionValue(_ item: String) -> (String, Int32, Int64) {
        let parts = item.split(separator: "=")
        let key = parts[0].split(separator: ":")
        return (String(key[0]), Int32(String(key[1])) ?? 0, Int64(String(parts[1])) ?? 0)
    }

    mutating func render(_ effects: GroupEffects) -> [String] {
        var lines = effects.replies.map(render)
        for append in effects.appends {
            if holding {
                lines += append.records.map { "append (held): " + Self.describe($0) }
                held.append(append)
            } else {
                lines += commit(append)
            }
        }
        return lines
    }

    mutating func commit(_ append: GroupAppend) -> [String] {
        log += append.records
        return append.records.map { "append: " + Self.describe($0) } + append.repliesOnCommit.map(render)
    }

    func render(_ reply: GroupReply) -> String {
        let who = clients[reply.token] ?? "?"
        switch reply.response {
        case .join(let response):
            if response.errorCode != .none {
                return "\(who): join error=\(response.errorCode.name) member=\(response.memberId)"
            }
            var line = "\(who): join gen=\(response.generationId) protocol=\(response.protocolName)"
            line += " leader=\(response.leader) member=\(response.memberId)"
            if !response.members.isEmpty {
                line += " members=[" + response.members.map(\.memberId).joined(separator: ",") + "]"
            }
            return line
        case .sync(let response):
            if response.errorCode != .none { return "\(who): sync error=\(response.errorCode.name)" }
            return "\(who): sync assignment=\(String(buffer: response.assignment))"
        case .heartbeat(let response):
            return "\(who): heartbeat \(response.errorCode.name)"
        case .leave(let response):
            return "\(who): leave \(response.errorCode.name)"
        case .offsetCommit(let response):
            let parts = response.topics.flatMap { topic in
                topic.partitions.map { "\(topic.name)-\($0.partitionIndex)=\($0.errorCode.name)" }
            }
            return "\(who): commit " + parts.joined(separator: " ")
        case .offsetFetch(let response):
            var parts = response.topics.flatMap { topic in
                topic.partitions.map { "\(topic.name)-\($0.partitionIndex)=\($0.committedOffset)" }
            }
            if response.errorCode != .none { parts.append("error=\(response.errorCode.name)") }
            return "\(who): fetch " + (parts.isEmpty ? "(none)" : parts.joined(separator: " "))
        case .describe(let response):
            let groups = response.groups.map { group in
                var text = group.groupState.isEmpty ? group.groupId : "\(group.groupId) \(group.groupState)"
                if group.errorCode != .none { text += " error=\(group.errorCode.name)" }
                text += " type=\(group.protocolType) protocol=\(group.protocolData) members=["
                text += group.members.map { member in
                    let assignment = String(buffer: member.memberAssignment)
                    return assignment.isEmpty ? member.memberId : "\(member.memberId):\(assignment)"
                }.joined(separator: ",")
                return text + "]"
            }
            return "\(who): describe" + groups.map { "\n  " + $0 }.joined()
        case .deleteGroups(let outcomes):
            return "\(who): delete " + outcomes.map { "\($0.groupId)=\($0.errorCode.name)" }.joined(separator: " ")
        case .list(let response):
            var parts = response.groups.map { "\($0.groupId)(\($0.protocolType))" }
            if response.errorCode != .none { parts.append("error=\(response.errorCode.name)") }
            return "\(who): list " + (parts.isEmpty ? "(none)" : parts.joined(separator: " "))
        }
    }

    static func describe(_ record: GroupRecord) -> String {
        switch try? record.decode() {
        case .offsetCommit(let group, let key, let committed?):
            return "offset \(group) \(key)=\(committed.offset)"
        case .offsetCommit(let group, let key, nil):
            return "offset \(group) \(key) tombstone"
        case .groupMetadata(let group, let metadata?):
            let members = metadata.members.map { member in
                let assignment = String(buffer: member.assignment)
                return assignment.isEmpty ? member.memberId : "\(member.memberId):\(assignment)"
            }
            return "metadata \(group) gen=\(metadata.generation) protocol=\(metadata.protocolName ?? "-")"
                + " leader=\(metadata.leader ?? "-") members=[\(members.joined(separator: ","))]"
        case .groupMetadata(let group, nil):
            return "metadata \(group) tombstone"
        case nil:
            return "undecodable record"
        }
    }

    func dump() -> [String] {
        coordinator.groupIds.flatMap { id -> [String] in
            guard let group = coordinator.groups[id] else { return [] }
            let members = group.members.map { member in
                let assignment = String(buffer: member.assignment)
                let name = member.instanceId.map { "\(member.id)(\($0))" } ?? member.id
                return assignment.isEmpty ? name : "\(name):\(assignment)"
            }
            let offsets = group.offsets.keys.sorted().map { "\($0)=\(group.offsets[$0]?.offset ?? -1)" }
            return [
                "\(id): \(group.state.name.rawValue) gen=\(group.generation) protocol=\(group.protocolName ?? "-")"
                    + " leader=\(group.leaderId ?? "-")",
                "  members=[\(members.joined(separator: ","))]",
                "  offsets=[\(offsets.joined(separator: ","))]",
            ]
        }
    }
}

/// Runs a scenario script and fails with the actual transcript when it differs from the script.
/// Set `SCENARIO_OUT` to a directory to get each differing transcript written there as `<function>.txt`.
func assertScenario(
    _ script: String,
    config: GroupCoordinatorConfig = GroupCoordinatorConfig(),
    function: String = #function,
    file: StaticString = #filePath,
    line: UInt = #line
) {
    var runner = ScenarioRunner(config: config)
    let expected = script.split(separator: "\n", omittingEmptySubsequences: false)
        .map { $0.trimmingCharacters(in: .whitespaces) == "" ? "" : String($0) }
        .joined(separator: "\n")
    let actual = runner.transcript(of: script)
    if actual != expected {
        if let directory = ProcessInfo.processInfo.environment["SCENARIO_OUT"] {
            let name = function.replacingOccurrences(of: "()", with: "")
            try? actual.write(toFile: "\(directory)/\(name).txt", atomically: true, encoding: .utf8)
        }
        XCTFail("scenario transcript differs; actual transcript:\n\(actual)", file: file, line: line)
    }
}
