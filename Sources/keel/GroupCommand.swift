// `keel group list|describe|delete|reset-offsets`: consumer-group administration through
// KeelClient, as kafka-consumer-groups.sh does it. `describe` shows lag per partition (the log
// end offset minus the committed offset: the queue length); `reset-offsets` moves a group that
// has no active members to the earliest or latest offset, an offset, or a time (replay), and
// changes nothing unless given --execute.
import ArgumentParser
import Foundation
import KafkaProtocol
import KeelClient
import Records

/// `keel group …`.
struct GroupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "group",
        abstract: "List, describe, delete consumer groups and reset their offsets.",
        subcommands: [GroupList.self, GroupDescribe.self, GroupDelete.self, GroupResetOffsets.self]
    )
}

struct GroupList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the consumer groups.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let client = try options.makeClient()
        let groups: [GroupListing]
        do {
            groups = try await client.listGroups()
        } catch {
            throw options.explain(error)
        }
        await client.close()
        for group in groups { print(group.groupId) }
    }
}

struct GroupDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe",
        abstract: "Show a group's state, members, and per partition its committed offset, log end offset and lag.")

    @OptionGroup var options: ClientOptions

    @Argument(help: "The group id.")
    var group: String

    func run() async throws {
        let client = try options.makeClient()
        do {
            let description = try await client.describeGroup(group)
            let committed = try await client.committedOffsets(group: group)
            if description.state == "Dead" && committed.isEmpty {
                throw CommandError("group '\(group)' does not exist; see the groups with `keel group list`")
            }
            var owners: [TopicPartition: GroupMemberDescription] = [:]
            for member in description.members {
                for partition in member.assignment { owners[partition] = member }
            }
            let partitions = Set(committed.keys).union(owners.keys).sorted {
                $0.topic == $1.topic ? $0.partition < $1.partition : $0.topic < $1.topic
            }
            var rows = [
                ["TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "MEMBER-ID", "CLIENT-ID", "HOST"]
            ]
            for partition in partitions {
                let end = try? await client.listOffsets(topic: partition.topic, partition: partition.partition, .latest)
                let current = committed[partition]
                let lag: String
                if let end, let current { lag = "\(max(0, end.value - current.value))" } else { lag = "-" }
                let owner = owners[partition]
                rows.append([
                    partition.topic, "\(partition.partition)", current.map { "\($0.value)" } ?? "-",
                    end.map { "\($0.value)" } ?? "-", lag, owner?.memberId ?? "-", owner?.clientId ?? "-",
                    owner?.clientHost ?? "-",
                ])
            }
            var protocolText = description.protocolType.isEmpty ? "-" : description.protocolType
            if !description.protocolName.isEmpty { protocolText += "/\(description.protocolName)" }
            print(
                "group \(description.groupId)  state \(description.state)  protocol \(protocolText)  "
                    + "coordinator \(description.coordinator)  members \(description.members.count)")
            print("")
            for line in table(rows) { print(line) }
            let idle = description.members.filter { $0.assignment.isEmpty }
            if !idle.isEmpty {
                print("")
                for line in table(
                    [["MEMBER-ID", "CLIENT-ID", "HOST", "PARTITIONS"]]
                        + idle.map { [$0.memberId, $0.clientId, $0.clientHost, "0"] })
                {
                    print(line)
                }
            }
        } catch let error as KeelClientError {
            throw options.explain(error, group: group)
        }
        await client.close()
    }
}

struct GroupDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete consumer groups that have no members, with their committed offsets.")

    @OptionGroup var options: ClientOptions

    @Argument(help: "The group ids.")
    var groups: [String]

    func run() async throws {
        guard !groups.isEmpty else {
            throw CommandError("name at least one group; write e.g. `keel group delete billing`")
        }
        let client = try options.makeClient()
        for group in groups {
            do {
                try await client.deleteGroup(group)
            } catch {
                throw options.explain(error, group: group)
            }
            print("deleted group '\(group)'")
        }
        await client.close()
    }
}

struct GroupResetOffsets: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset-offsets",
        abstract: "Move a group's committed offsets (the group must have no active members).",
        discussion: """
            Shows the new offsets and changes nothing unless given --execute. Name the partitions with \
            --topic (repeatable): `orders` for all its partitions, `orders:0,2` for some; or --all-topics for \
            every partition the group has committed. An offset outside a partition's log is moved to its \
            nearest end, as kafka-consumer-groups.sh does.
            """)

    @OptionGroup var options: ClientOptions

    @Argument(help: "The group id.")
    var group: String

    @Option(name: .customLong("topic"), help: "A topic, or topic:partition,partition (repeatable).")
    var topics: [String] = []

    @Flag(name: .long, help: "Every partition the group has a committed offset for.")
    var allTopics = false

    @Flag(name: .long, help: "Reset to the log start offset.")
    var toEarliest = false

    @Flag(name: .long, help: "Reset to the log end offset (skip everything not yet read).")
    var toLatest = false

    @Option(name: .long, help: "Reset to this offset.")
    var toOffset: Int64?

    @Option(
        name: .long,
        help: "Reset to the first record at or after this time: ISO 8601 (2026-11-25T10:00:00Z) or milliseconds.")
    var toDatetime: String?

    @Flag(name: .long, help: "Commit the new offsets (without it, only show them).")
    var execute = false

    /// The target, from the one --to-* option given.
    enum Target {
        case earliest, latest
        case offset(Int64)
        case time(Int64)
    }

    func target() throws -> Target {
        var targets: [Target] = []
        if toEarliest { targets.append(.earliest) }
        if toLatest { targets.append(.latest) }
        if let toOffset {
            guard toOffset >= 0 else { throw CommandError("--to-offset must be 0 or more") }
            targets.append(.offset(toOffset))
        }
        if let toDatetime {
            if let ms = Int64(toDatetime) {
                targets.append(.time(ms))
            } else if let ms = parseISO8601Milliseconds(toDatetime) {
                targets.append(.time(ms))
            } else {
                throw CommandError(
                    "--to-datetime '\(toDatetime)' is not a time; write e.g. --to-datetime 2026-11-25T10:00:00Z "
                        + "or milliseconds since 1970")
            }
        }
        guard targets.count == 1 else {
            throw CommandError(
                "give exactly one of --to-earliest, --to-latest, --to-offset N, --to-datetime TIME "
                    + "(\(targets.count) given)")
        }
        return targets[0]
    }

    /// `orders` or `orders:0,2` → the topic and the partitions named (nil: all of them).
    static func parseTopic(_ text: String) throws -> (String, [Int32]?) {
        guard let colon = text.firstIndex(of: ":") else {
            guard !text.isEmpty else { throw CommandError("--topic must not be empty; write e.g. --topic orders") }
            return (text, nil)
        }
        let name = String(text[..<colon])
        let list = text[text.index(after: colon)...].split(separator: ",", omittingEmptySubsequences: false)
        let partitions = list.compactMap { Int32($0) }
        guard !name.isEmpty, !list.isEmpty, partitions.count == list.count, partitions.allSatisfy({ $0 >= 0 }) else {
            throw CommandError(
                "--topic '\(text)' is not topic or topic:partition,partition; write e.g. --topic orders:0,2")
        }
        return (name, partitions)
    }

    func run() async throws {
        let target = try target()
        if topics.isEmpty && !allTopics {
            throw CommandError("name the partitions to reset with --topic orders[:0,2] or --all-topics")
        }
        if !topics.isEmpty && allTopics { throw CommandError("give --topic or --all-topics, not both") }
        let named = try topics.map(Self.parseTopic)
        let client = try options.makeClient()
        do {
            // Like kafka-consumer-groups.sh: only a group without active members may be moved, or
            // its members would commit over the new offsets.
            let description = try await client.describeGroup(group)
            guard description.state == "Empty" || description.state == "Dead" else {
                throw CommandError(
                    "group '\(group)' has active members (state \(description.state)); stop its consumers, "
                        + "then reset its offsets")
            }
            let current = try await client.committedOffsets(group: group)
            var partitions: [TopicPartition] = []
            if allTopics {
                partitions = current.keys.sorted {
                    $0.topic == $1.topic ? $0.partition < $1.partition : $0.topic < $1.topic
                }
                guard !partitions.isEmpty else {
                    throw CommandError("group '\(group)' has no committed offsets; name the partitions with --topic")
                }
            }
            for (topic, indexes) in named {
                let info = try await client.describeTopic(topic)
                let existing = info.partitions.map(\.partition)
                for index in indexes ?? existing {
                    guard existing.contains(index) else {
                        throw KeelClientError.unknownPartition(topic: topic, partition: index)
                    }
                    partitions.append(TopicPartition(topic: topic, partition: index))
                }
            }
            var plan: [TopicPartition: Offset] = [:]
            var rows = [["TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"]]
            var notes: [String] = []
            for partition in partitions {
                let earliest =
                    try await client.listOffsets(topic: partition.topic, partition: partition.partition, .earliest)
                    ?? .zero
                let latest =
                    try await client.listOffsets(topic: partition.topic, partition: partition.partition, .latest)
                    ?? .zero
                var offset: Offset
                switch target {
                case .earliest: offset = earliest
                case .latest: offset = latest
                case .offset(let value): offset = Offset(value)
                case .time(let ms):
                    offset =
                        try await client.listOffsets(
                            topic: partition.topic, partition: partition.partition, .timestamp(ms))
                        ?? latest
                }
                if offset < earliest || offset > latest {
                    let clamped = offset < earliest ? earliest : latest
                    notes.append("\(partition): offset \(offset) is outside \(earliest)..\(latest), using \(clamped)")
                    offset = clamped
                }
                plan[partition] = offset
                rows.append([
                    partition.topic, "\(partition.partition)", current[partition].map { "\($0.value)" } ?? "-",
                    "\(offset.value)",
                ])
            }
            for note in notes { print("note: \(note)") }
            for line in table(rows) { print(line) }
            if execute {
                try await client.commitOffsets(group: group, plan)
                print("committed \(plan.count) offset\(plan.count == 1 ? "" : "s") for group '\(group)'")
            } else {
                print("dry run: nothing changed; add --execute to commit these offsets")
            }
        } catch let error as KeelClientError {
            throw options.explain(error, group: group)
        }
        await client.close()
    }
}

/// Rows as left-aligned columns two spaces apart.
func table(_ rows: [[String]]) -> [String] {
    let columns = rows.map(\.count).max() ?? 0
    var widths = [Int](repeating: 0, count: columns)
    for row in rows {
        for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) }
    }
    return rows.map { row in
        row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell.padding(toLength: widths[index], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }
}
