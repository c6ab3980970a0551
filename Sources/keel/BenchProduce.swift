// `keel bench produce`: the KeelClient producer as a benchmark client, the Swift peer of
// tools/peers/rdkafka_bench.c. It prints one `result ...` line in the same format, which
// `tools/bench produce` reads. Not a test: nothing is asserted.
import ArgumentParser
import Foundation
import KeelClient
import NIOCore
import Synchronization

struct BenchProduce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Produce to a broker with KeelClient: msg/s as fast as it goes, or latency at a fixed rate."
    )

    @OptionGroup var client: ClientOptions

    @Option(help: "The topic (it must exist).")
    var topic: String

    @Option(help: "A file of values, one per line (`keel bench sample`); messages cycle over them.")
    var values: String

    @Option(help: "How many messages.")
    var count = 100_000

    @Option(help: "Messages per second (0: as fast as the producer takes them, with enqueue and one flush).")
    var rate = 0

    @Option(help: "Messages not counted in the latency histogram (default: one second's worth).")
    var warmup: Int?

    @Option(help: "linger.ms of the producer.")
    var lingerMs: Int64 = 5

    @Option(help: "Largest batch, in bytes.")
    var batchBytes = 64 * 1024

    @Option(help: "lz4 or none.")
    var compression = "lz4"

    @Option(help: "Idempotent producer: true or false.")
    var idempotent = "true"

    @Option(help: "Stop after this many seconds whatever happened.")
    var seconds: Double = 60

    func run() async throws {
        let lines = try loadValues()
        var configuration = ProducerConfiguration()
        configuration.acks = .all
        configuration.lingerMs = lingerMs
        configuration.batchBytesMax = batchBytes
        switch compression {
        case "lz4": configuration.compression = .lz4
        case "none": configuration.compression = .none
        default: throw CommandError("--compression \(compression) must be lz4 or none")
        }
        guard let idempotence = Bool(idempotent) else {
            throw CommandError("--idempotent \(idempotent) must be true or false")
        }
        configuration.idempotent = idempotence
        let keel = try client.makeClient()
        let producer: KeelProducer
        do throws(KeelClientError) {
            // Connects, asks for a producer id and learns the topic before the clock starts.
            producer = try await KeelProducer(client: keel, configuration: configuration)
            _ = try await keel.topicInfo(topic)
        } catch {
            throw client.explain(error, topic: topic)
        }
        let clock = ContinuousClock()
        let start = clock.now
        let deadline = start + .seconds(seconds)
        if rate == 0 {
            var sent = 0
            var bytes = 0
            do throws(KeelClientError) {
                while sent < count, clock.now < deadline {
                    let value = lines[sent % lines.count]
                    try await producer.enqueue(topic: topic, key: nil, value: value)
                    bytes += value.readableBytes
                    sent += 1
                }
                try await producer.flush()
            } catch {
                throw client.explain(error, topic: topic)
            }
            let elapsed = Self.seconds(clock.now - start)
            print(
                "result produce msgs=\(sent) failed=0 seconds=\(Self.fixed(elapsed, 3)) "
                    + "msg_per_s=\(Self.fixed(Double(sent) / elapsed, 0)) "
                    + "mb_per_s=\(Self.fixed(Double(bytes) / elapsed / 1e6, 1)) linger_ms=\(lingerMs) "
                    + "batch_bytes=\(batchBytes) codec=\(compression) client=keel")
        } else {
            let skip = warmup ?? rate
            let recorder = LatencyRecorder()
            var sent = 0
            await withTaskGroup(of: Void.self) { group in
                while sent < count, clock.now < deadline {
                    let due = start + .nanoseconds(Int64(Double(sent) * 1e9 / Double(rate)))
                    if clock.now < due { try? await clock.sleep(until: due) }
                    let index = sent
                    let value = lines[index % lines.count]
                    let sentAt = clock.now
                    group.addTask {
                        do throws(KeelClientError) {
                            _ = try await producer.send(topic: topic, key: nil, value: value)
                            let micros = Self.seconds(clock.now - sentAt) * 1e6
                            if index >= skip { recorder.histogram.withLock { $0.record(micros: micros) } }
                        } catch {
                            recorder.failures.add(1, ordering: .relaxed)
                        }
                    }
                    sent += 1
                }
            }
            let elapsed = Self.seconds(clock.now - start)
            let h = recorder.histogram.withLock { $0 }
            let failed = recorder.failures.load(ordering: .relaxed)
            print(
                "result latency rate=\(rate) msgs=\(sent - failed) counted=\(h.total) failed=\(failed) "
                    + "seconds=\(Self.fixed(elapsed, 3)) achieved_msg_per_s=\(Self.fixed(Double(sent) / elapsed, 0)) "
                    + "p50_ms=\(Self.fixed(h.percentile(50) / 1e3, 3)) p99_ms=\(Self.fixed(h.percentile(99) / 1e3, 3)) "
                    + "p99_9_ms=\(Self.fixed(h.percentile(99.9) / 1e3, 3)) max_ms=\(Self.fixed(h.max / 1e3, 3)) "
                    + "linger_ms=\(lingerMs) codec=\(compression) client=keel")
        }
        do throws(KeelClientError) {
            try await producer.close()
        } catch {
            throw client.explain(error, topic: topic)
        }
        await keel.close()
    }

    private func loadValues() throws -> [ByteBuffer] {
        guard let data = FileManager.default.contents(atPath: values) else {
            throw CommandError("cannot read --values \(values); write one with `keel bench sample`")
        }
        var lines: [ByteBuffer] = []
        for line in data.split(separator: UInt8(ascii: "\n")).prefix(65536) {
            lines.append(ByteBuffer(bytes: line))
        }
        guard !lines.isEmpty else { throw CommandError("--values \(values) holds no lines") }
        return lines
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func fixed(_ value: Double, _ digits: Int) -> String {
        String(format: "%.\(digits)f", value)
    }
}

/// What the fixed-rate senders share.
final class LatencyRecorder: Sendable {
    let histogram = Mutex(LatencyHistogram())
    let failures = Atomic<Int>(0)
}

/// Microseconds in log-linear buckets: exact below 2048 µs, then 1024 buckets per power of two.
struct LatencyHistogram: Sendable {
    var counts: [Int: Int] = [:]
    var total = 0
    var max: Double = 0

    mutating func record(micros: Double) {
        let us = Int(micros)
        var bucket = us
        if us >= 2048 {
            let shift = (Int.bitWidth - us.leadingZeroBitCount - 1) - 10
            bucket = (us >> shift) << shift
        }
        counts[bucket, default: 0] += 1
        total += 1
        if micros > max { max = micros }
    }

    /// The lower edge of the bucket holding the `p`th percentile, in microseconds.
    func percentile(_ p: Double) -> Double {
        let want = Swift.max(1, Int((Double(total) * p / 100).rounded(.up)))
        var seen = 0
        for key in counts.keys.sorted() {
            seen += counts[key]!
            if seen >= want { return Double(key) }
        }
        return max
    }
}
