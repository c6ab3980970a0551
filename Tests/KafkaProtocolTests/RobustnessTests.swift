import Foundation
import KafkaProtocol
import NIOCore
import XCTest

/// SplitMix64: a small seeded generator so that a failing fuzz run replays from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class RobustnessTests: XCTestCase {
    /// Every prefix of every request frame is refused with a typed error, never a crash.
    func testEveryTruncatedRequestIsRefused() {
        XCTAssertEqual(Samples.fixturePayloads.count, 13, "every client fixture but the ApiVersions v4 one")
        let fixtures = Samples.fixturePayloads.map { payload in
            (header: RequestHeader(apiKey: .apiVersions, apiVersion: 0, correlationId: 0, clientId: "fixture"), payload)
        }
        for (header, payload) in Samples.requestFrames + fixtures {
            let all = bytes(payload)
            for length in 0..<all.count {
                XCTAssertThrowsError(
                    try KafkaRequestDecoder.decode(frame: buffer(Array(all[0..<length]))),
                    "\(header.apiKey) v\(header.apiVersion) cut at \(length)")
            }
        }
    }

    /// Every prefix of every response body is refused by the client-side decoder.
    func testEveryTruncatedResponseIsRefused() {
        for sample in Samples.responses {
            assertTruncationsRefused(sample.response, version: sample.version)
        }
    }

    private func assertTruncationsRefused<M: KafkaMessage>(_ body: M, version: Int16) {
        let all = bytes(payload(ofFrame: KafkaResponseEncoder.encodeFrame(body, version: version, correlationId: 1)))
        for length in 0..<all.count {
            XCTAssertThrowsError(
                try KafkaResponseDecoder.decode(M.self, frame: buffer(Array(all[0..<length])), version: version),
                "\(M.apiKey) v\(version) cut at \(length)")
        }
    }

    /// Randomly mutated request frames either decode (and then re-encode to an equivalent request)
    /// or fail with a typed error. Set KEEL_FUZZ_SEED to replay a run.
    func testSeededMutationFuzzOfRequestDecoders() {
        let seed = ProcessInfoSeed.value
        print("RobustnessTests fuzz seed: \(seed) (replay with KEEL_FUZZ_SEED=\(seed))")
        var rng = SplitMix64(state: seed)
        let frames = (Samples.requestFrames.map(\.payload) + Samples.fixturePayloads).map(bytes)
        let iterations = 5000
        var decodedCount = 0
        for iteration in 0..<iterations {
            var input = frames[Int.random(in: 0..<frames.count, using: &rng)]
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                mutate(&input, using: &rng)
            }
            do {
                let decoded = try KafkaRequestDecoder.decode(
                    frame: buffer(input), limits: KafkaReader.Limits(arrayCountMax: 10_000))
                decodedCount += 1
                var writer = KafkaWriter()
                decoded.header.encode(into: &writer)
                decoded.request.encode(into: &writer, version: decoded.header.apiVersion)
                let again = try KafkaRequestDecoder.decode(frame: writer.buffer)
                XCTAssertEqual(again, decoded, "seed \(seed) iteration \(iteration)")
            } catch {
                continue  // a typed refusal is the expected outcome for most mutations
            }
        }
        print("RobustnessTests fuzz: \(iterations) mutated frames, \(decodedCount) still decoded")
    }

    private func mutate(_ input: inout [UInt8], using rng: inout SplitMix64) {
        let interesting: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]
        switch Int.random(in: 0..<6, using: &rng) {
        case 0 where !input.isEmpty:
            let index = Int.random(in: 0..<input.count, using: &rng)
            input[index] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
        case 1 where !input.isEmpty:
            let index = Int.random(in: 0..<input.count, using: &rng)
            input[index] = interesting[Int.random(in: 0..<interesting.count, using: &rng)]
        case 2 where !input.isEmpty:
            input.removeLast(Int.random(in: 1...min(8, input.count), using: &rng))
        case 3:
            let index = Int.random(in: 0...input.count, using: &rng)
            input.insert(
                contentsOf: (0..<Int.random(in: 1...4, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng)
                }, at: index)
        case 4 where input.count > 12:
            // Overwrite four bytes with a large or negative int32, the classic length attack.
            let index = Int.random(in: 8..<(input.count - 3), using: &rng)
            let value = [Int32.max, -1, -2, Int32.min, 0x0000_FFFF][Int.random(in: 0..<5, using: &rng)]
            for offset in 0..<4 { input[index + offset] = UInt8(truncatingIfNeeded: value >> (24 - 8 * offset)) }
        default:
            if input.count > 1 {
                let index = Int.random(in: 0..<(input.count - 1), using: &rng)
                input.swapAt(index, index + 1)
            }
        }
    }
}

/// The fuzz seed: KEEL_FUZZ_SEED if set, else a fresh random one (printed by the test).
enum ProcessInfoSeed {
    static var value: UInt64 {
        if let text = ProcessInfo.processInfo.environment["KEEL_FUZZ_SEED"], let seed = UInt64(text) { return seed }
        return UInt64.random(in: 0...UInt64.max)
    }
}
