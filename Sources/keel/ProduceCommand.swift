// `keel produce TOPIC`: one record per input line, from stdin or a file, through KeelProducer
// (batched, LZ4, idempotent with acks=all). Prints how many records were acknowledged.
import ArgumentParser
import Foundation
import KafkaProtocol
import KeelClient
import NIOCore
import Records

struct ProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Send each line of stdin (or a file) as one record."
    )

    @OptionGroup var options: ClientOptions

    @Argument(help: "The topic to write to.")
    var topic: String

    @Option(name: .long, help: "Read lines from this file instead of stdin.")
    var file: String?

    @Option(name: .long, help: "Split each line at the first SEP into key and value.")
    var keySeparator: String?

    @Option(name: .customLong("header"), help: "A header added to every record, key=value (repeatable).")
    var headers: [String] = []

    @Option(name: .long, help: "Write every record to this partition (default: by key, or sticky for no key).")
    var partition: Int32?

    @Option(name: .long, help: "Acknowledgements to wait for: 0, 1 or all.")
    var acks = "all"

    func run() async throws {
        let acknowledgements: Acks
        switch acks {
        case "0": acknowledgements = .none
        case "1": acknowledgements = .leader
        case "all", "-1": acknowledgements = .all
        default: throw CommandError("--acks '\(acks)' is not 0, 1 or all; write e.g. --acks all")
        }
        if let keySeparator, keySeparator.isEmpty {
            throw CommandError("--key-separator must not be empty; write e.g. --key-separator ':'")
        }
        if let partition, partition < 0 { throw CommandError("--partition must be 0 or more") }
        let recordHeaders = try parseKeyValues(headers, option: "--header").map {
            RecordHeader(key: $0.0, value: ByteBuffer(string: $0.1))
        }
        let lines = try LineReader(path: file)

        let client = try options.makeClient()
        var configuration = ProducerConfiguration()
        configuration.acks = acknowledgements
        configuration.idempotent = acknowledgements == .all
        let producer: KeelProducer
        do {
            producer = try await KeelProducer(client: client, configuration: configuration)
        } catch {
            throw options.explain(error, topic: topic)
        }
        var count = 0
        var lineNumber = 0
        let separator = keySeparator.map { Array($0.utf8) }
        do {
            // One buffer per line holds the record's bytes; key and value are slices of it.
            while let line = lines.next() {
                lineNumber += 1
                var key: ByteBuffer?
                var value = line
                if let separator, let keySeparator {
                    guard let at = Self.firstIndex(of: separator, in: line),
                        let head = line.getSlice(at: line.readerIndex, length: at - line.readerIndex),
                        let tail = line.getSlice(
                            at: at + separator.count, length: line.writerIndex - at - separator.count)
                    else {
                        throw CommandError(
                            "line \(lineNumber) has no key separator '\(keySeparator)'; write KEY\(keySeparator)VALUE "
                                + "on every line or leave out --key-separator")
                    }
                    key = head
                    value = tail
                }
                try await producer.enqueue(
                    topic: topic, key: key, value: value, headers: recordHeaders, partition: partition)
                count += 1
            }
            try await producer.flush()
        } catch let error as KeelClientError {
            throw options.explain(error, topic: topic)
        }
        await client.close()
        print("produced \(count) record\(count == 1 ? "" : "s") to \(topic)")
    }
}

extension ProduceCommand {
    /// The reader index of the first occurrence of `separator` in `line`, if any.
    static func firstIndex(of separator: [UInt8], in line: ByteBuffer) -> Int? {
        let view = line.readableBytesView
        guard let first = separator.first, view.count >= separator.count else { return nil }
        var index = view.startIndex
        let last = view.endIndex - separator.count
        while index <= last {
            if view[index] == first && view[index..<(index + separator.count)].elementsEqual(separator) {
                return line.readerIndex + (index - view.startIndex)
            }
            index += 1
        }
        return nil
    }
}

/// Lines of a file or of stdin, without their line ends ("\n" or "\r\n"), each in its own buffer.
final class LineReader {
    private let handle: UnsafeMutablePointer<FILE>
    private let ownsHandle: Bool
    private var isOpen = true
    /// getline's buffer, reused for every line.
    private var line: UnsafeMutablePointer<CChar>?
    private var capacity = 0

    init(path: String?) throws {
        if let path {
            guard let opened = fopen(path, "r") else {
                throw CommandError("cannot read '\(path)'; check the --file path and its permissions")
            }
            handle = opened
            ownsHandle = true
        } else {
            guard let input = fdopen(STDIN_FILENO, "r") else {
                throw CommandError("cannot read stdin; pass --file FILE instead")
            }
            handle = input
            ownsHandle = false
        }
    }

    deinit {
        free(line)
        if isOpen && ownsHandle { fclose(handle) }
    }

    /// The next line's bytes, or nil at the end of the input.
    func next() -> ByteBuffer? {
        guard isOpen else { return nil }
        let length = getline(&line, &capacity, handle)
        guard length >= 0, let line else {
            isOpen = false
            if ownsHandle { fclose(handle) }
            return nil
        }
        var bytes = UnsafeRawBufferPointer(start: line, count: length)
        if bytes.last == UInt8(ascii: "\n") { bytes = UnsafeRawBufferPointer(rebasing: bytes.dropLast()) }
        if bytes.last == UInt8(ascii: "\r") { bytes = UnsafeRawBufferPointer(rebasing: bytes.dropLast()) }
        return ByteBuffer(bytes: bytes)
    }
}
