// `keel consume TOPIC`: prints a topic's records from the earliest or latest offset, an
// offset, or a point in time; stops after --count records or when idle for --timeout-ms.
// With --group G it is a member of consumer group G (KeelConsumer): the group shares the
// topic's partitions among its members, reading starts at the group's committed offsets, and
// the positions of the records printed are committed on the way out.
import ArgumentParser
import Foundation
import KafkaProtocol
import KeelClient
import NIOCore
import Records

struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Print a topic's records, as text (the values) or JSON lines."
    )

    @OptionGroup var options: ClientOptions

    @Argument(help: "The topic to read.")
    var topic: String

    @Option(name: .long, help: "Read only this partition (default: every partition).")
    var partition: Int32?

    @Option(
        name: .long,
        help: """
            Where to start: earliest, latest, an offset, or a time such as 2026-11-25T10:00:00Z (default earliest). \
            With --group: where a partition without a committed offset starts, earliest or latest (default latest).
            """)
    var from: String?

    @Option(
        name: .long, help: "Read as a member of this consumer group, from its committed offsets, committing as it goes."
    )
    var group: String?

    @Option(name: .long, help: "Stop after this many records.")
    var count: Int?

    @Option(name: .long, help: "Output: text (one value per line) or json (one object per line).")
    var format = "text"

    @Option(name: .long, help: "Stop when no record arrives for this many milliseconds (0 = never).")
    var timeoutMs: Int64 = 5_000

    /// Where consumption starts, as parsed from `--from`.
    enum Start: Sendable {
        case spec(OffsetSpec)
        case offset(Offset)
    }

    func run() async throws {
        guard format == "text" || format == "json" else {
            throw CommandError("--format '\(format)' is not text or json; write --format json")
        }
        if let count, count < 1 { throw CommandError("--count must be at least 1") }
        guard timeoutMs >= 0 else { throw CommandError("--timeout-ms must be 0 (never) or more") }
        if let group {
            try await consumeInGroup(group)
            return
        }
        let start = try parseFrom(from ?? "earliest")
        let client = try options.makeClient()
        let asJSON = format == "json"
        do {
            let info = try await client.describeTopic(topic)
            var partitions = info.partitions.map(\.partition)
            if let partition {
                guard partitions.contains(partition) else {
                    throw KeelClientError.unknownPartition(topic: topic, partition: partition)
                }
                partitions = [partition]
            }
            let limit = count
            let idle = timeoutMs == 0 ? nil : timeoutMs
            let topic = self.topic
            let (stream, continuation) = AsyncThrowingStream.makeStream(of: ConsumerRecord.self)
            // One consumer per partition feeds the stream; it ends when all have gone idle.
            let feeder = Task {
                do {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for partition in partitions {
                            group.addTask {
                                let offset = try await Self.startOffset(
                                    start, client: client, topic: topic, partition: partition)
                                let consumer = client.partitionConsumer(
                                    topic: topic, partition: partition, from: offset, idleTimeoutMs: idle)
                                for try await record in consumer { continuation.yield(record) }
                            }
                        }
                        try await group.waitForAll()
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            var printed = 0
            do {
                for try await record in stream {
                    print(asJSON ? Self.json(record) : Self.text(record))
                    printed += 1
                    if let limit, printed >= limit { break }
                }
            } catch {
                feeder.cancel()
                throw error
            }
            feeder.cancel()
        } catch let error as KeelClientError {
            throw options.explain(error, topic: topic)
        }
        await client.close()
    }

    /// `--group`: one member of the group, printing what the group assigns it; on the way out it
    /// commits the positions of the records printed and leaves the group.
    func consumeInGroup(_ group: String) async throws {
        guard !group.isEmpty else { throw CommandError("--group must not be empty; write e.g. --group billing") }
        guard partition == nil else {
            throw CommandError(
                "--partition cannot be used with --group: the group assigns the partitions; drop one of them")
        }
        var reset = AutoOffsetReset.latest
        switch from {
        case nil, "latest", "end": reset = .latest
        case "earliest", "beginning": reset = .earliest
        case let other?:
            throw CommandError(
                "--from '\(other)' with --group must be earliest or latest (where a partition without a committed "
                    + "offset starts); to move the group, use `keel group reset-offsets \(group)`")
        }
        let client = try options.makeClient()
        do {
            _ = try await client.describeTopic(topic)
        } catch {
            throw options.explain(error, topic: topic)
        }
        var configuration = ConsumerConfiguration(groupId: group)
        configuration.autoOffsetReset = reset
        let consumer: KeelConsumer
        do {
            consumer = try KeelConsumer(client: client, configuration: configuration)
            try await consumer.subscribe([topic])
        } catch {
            throw options.explain(error, topic: topic)
        }
        let asJSON = format == "json"
        var printed = 0
        do {
            // The first poll also waits for the group to form (a few seconds on a new group).
            for try await record in consumer.records(idleTimeoutMs: timeoutMs == 0 ? nil : timeoutMs) {
                print(asJSON ? Self.json(record) : Self.text(record))
                printed += 1
                if let count, printed >= count { break }
            }
        } catch {
            await consumer.close()
            await client.close()
            throw options.explain(error, topic: topic, group: group)
        }
        await consumer.close()
        await client.close()
    }

    /// Parses `--from`.
    func parseFrom(_ text: String) throws -> Start {
        switch text {
        case "earliest", "beginning": return .spec(.earliest)
        case "latest", "end": return .spec(.latest)
        default: break
        }
        if let offset = Int64(text) {
            guard offset >= 0 else { throw CommandError("--from offset must be 0 or more") }
            return .offset(Offset(offset))
        }
        guard let ms = parseISO8601Milliseconds(text) else {
            throw CommandError(
                "--from '\(text)' is not earliest, latest, an offset or a time; write e.g. --from 2026-11-25T10:00:00Z")
        }
        return .spec(.timestamp(ms))
    }

    static func startOffset(_ start: Start, client: KeelClient, topic: String, partition: Int32) async throws
        -> Offset
    {
        switch start {
        case .offset(let offset):
            return offset
        case .spec(let spec):
            if let found = try await client.listOffsets(topic: topic, partition: partition, spec) { return found }
            // No record at or after that time: start at the end.
            return try await client.listOffsets(topic: topic, partition: partition, .latest) ?? .zero
        }
    }

    static func string(_ buffer: ByteBuffer?) -> String? {
        buffer.map { String(decoding: $0.readableBytesView, as: UTF8.self) }
    }

    static func text(_ record: ConsumerRecord) -> String { string(record.value) ?? "" }

    /// One JSON object: partition, offset, timestamp, key, value, headers (UTF-8, invalid bytes replaced).
    static func json(_ record: ConsumerRecord) -> String {
        let headers = record.headers.map { "{\"key\":\(quote($0.key)),\"value\":\(quote(string($0.value)))}" }
        return "{\"partition\":\(record.partition),\"offset\":\(record.offset.value),\"timestamp\":\(record.timestamp),"
            + "\"key\":\(quote(string(record.key))),\"value\":\(quote(string(record.value))),"
            + "\"headers\":[\(headers.joined(separator: ","))]}"
    }

    static func quote(_ text: String?) -> String {
        guard let text else { return "null" }
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Milliseconds since the epoch of an ISO 8601 time with a zone (`2026-11-25T10:00:00Z`,
/// `2026-11-25T10:00:00.250+01:00`), or nil.
func parseISO8601Milliseconds(_ text: String) -> Int64? {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime]
    var date = formatter.date(from: text)
    if date == nil {
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        date = formatter.date(from: text)
    }
    return date.map { Int64(($0.timeIntervalSince1970 * 1000).rounded()) }
}
