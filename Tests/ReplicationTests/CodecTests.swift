// The peer wire format and heartbeat coalescing.
import NIOCore
import Raft
import Records
import Replication
import XCTest

final class CodecTests: XCTestCase {
    let group = GroupID(topic: "payments", partition: 7)

    func stampedBatch(_ tag: String, at offset: Int64, term: UInt64, records: Int = 2) throws -> ByteBuffer {
        var batch = try makeBatch(tag, records: records)
        RecordBatch.setBaseOffset(Offset(offset), in: &batch, at: 0)
        RecordBatch.setPartitionLeaderEpoch(Int32(term), in: &batch, at: 0)
        return batch
    }

    func sampleFrames() throws -> [PeerFrame] {
        let data = try BatchPayload(
            validating: try stampedBatch("x", at: 10, term: 3), firstIndex: LogIndex(10), lastIndex: LogIndex(11),
            term: Term(3))
        let kinds: [MessageKind<BatchPayload>] = [
            .preVoteRequest(lastIndex: LogIndex(9), lastTerm: Term(2)),
            .preVoteResponse(granted: true),
            .voteRequest(lastIndex: .none, lastTerm: .zero, transfer: true),
            .voteResponse(granted: false),
            .append(
                prevLastIndex: LogIndex(9), prevTerm: Term(2),
                entries: [
                    Entry(term: Term(3), firstIndex: LogIndex(10), lastIndex: LogIndex(11), content: .data(data)),
                    Entry(term: Term(3), firstIndex: LogIndex(12), lastIndex: LogIndex(12), content: .leaderChange),
                ],
                leaderCommit: LogIndex(8)),
            .append(prevLastIndex: .none, prevTerm: .zero, entries: [], leaderCommit: .none),
            .appendResponse(.accepted(match: LogIndex(12))),
            .appendResponse(.rejected(prevLastIndex: LogIndex(9), hintIndex: LogIndex(4), hintTerm: Term(1))),
            .heartbeat(commit: LogIndex(8)),
            .heartbeatResponse,
            .resetLog(start: LogIndex(100), prevTerm: Term(2), leaderCommit: LogIndex(120)),
            .timeoutNow,
        ]
        var frames = kinds.map {
            PeerFrame.message(
                ReplicationMessage(
                    group: group, incarnation: 42,
                    message: Message(from: NodeID(1), to: NodeID(2), term: Term(3), kind: $0)))
        }
        frames.append(
            .heartbeats(
                CoalescedHeartbeats(
                    from: NodeID(2), to: NodeID(3),
                    items: [
                        HeartbeatItem(
                            group: group, incarnation: 42, term: Term(4), kind: .heartbeat(commit: LogIndex(17))),
                        HeartbeatItem(group: GroupID(topic: "é", partition: 0), term: Term(1), kind: .response),
                    ])))
        return frames
    }

    func encode(_ frame: PeerFrame) -> ByteBuffer {
        var buffer = ByteBuffer()
        ReplicationCodec.encode(frame, into: &buffer)
        return buffer
    }

    /// Every message kind survives encode → decode → encode byte for byte, fed whole or one byte at a time.
    func testRoundTripWholeAndByteAtATime() throws {
        for frame in try sampleFrames() {
            var bytes = encode(frame)
            let original = bytes
            let decoded = try XCTUnwrap(try ReplicationCodec.decodeFrame(from: &bytes))
            XCTAssertEqual(bytes.readableBytes, 0)
            XCTAssertEqual(encode(decoded), original)
            // One byte at a time: nil until the frame is complete, then the same frame.
            var stream = ByteBuffer()
            var result: PeerFrame?
            for byte in original.readableBytesView {
                XCTAssertNil(result)
                stream.writeInteger(byte)
                result = try ReplicationCodec.decodeFrame(from: &stream)
            }
            XCTAssertEqual(encode(try XCTUnwrap(result)), original)
        }
    }

    /// The pieces a peer connection writes (an append's batches as their own buffers, not copied) are, end to
    /// end, exactly the bytes of `encode(into:)`, for every frame kind and for appends of several batches.
    func testEncodedPartsAreTheFrameBytes() throws {
        var entries: [Entry<BatchPayload>] = []
        var index: Int64 = 20
        for tag in ["a", "b", "c"] {
            let batch = try stampedBatch(tag, at: index, term: 4, records: 3)
            let payload = try BatchPayload(
                validating: batch, firstIndex: LogIndex(index), lastIndex: LogIndex(index + 2), term: Term(4))
            entries.append(
                Entry(term: Term(4), firstIndex: LogIndex(index), lastIndex: LogIndex(index + 2), content: .data(payload)))
            index += 3
            if tag == "b" {
                entries.append(
                    Entry(term: Term(4), firstIndex: LogIndex(index), lastIndex: LogIndex(index), content: .leaderChange))
                index += 1
            }
        }
        let several = PeerFrame.message(
            ReplicationMessage(
                group: group,
                message: Message(
                    from: NodeID(1), to: NodeID(3), term: Term(4),
                    kind: .append(prevLastIndex: LogIndex(19), prevTerm: Term(4), entries: entries, leaderCommit: LogIndex(15)))))
        for frame in try sampleFrames() + [several] {
            var joined = ByteBuffer()
            for var part in ReplicationCodec.encodeParts(frame) { joined.writeBuffer(&part) }
            XCTAssertEqual(joined, encode(frame))
        }
        XCTAssertEqual(ReplicationCodec.encodeParts(several).count, 6)  // 3 batches, each after the bytes before it
    }

    /// Garbage throws or waits for more bytes, never traps: random bytes, and valid frames with bytes flipped,
    /// truncated or with their length prefix changed. Seeded and bounded.
    func testGarbageNeverTraps() throws {
        var random = SeededRandom(seed: 0xC0DEC)
        let valid = try sampleFrames().map(encode)
        var thrown = 0
        for round in 0..<20_000 {
            var bytes: ByteBuffer
            if round % 4 == 0 {
                bytes = ByteBuffer(
                    bytes: (0..<Int(random.next() % 200)).map { _ in UInt8(truncatingIfNeeded: random.next()) })
                if bytes.readableBytes >= 4 { bytes.setInteger(UInt32(bytes.readableBytes - 4), at: 0) }
            } else {
                bytes = valid[Int(random.next() % UInt64(valid.count))]
                let flips = 1 + Int(random.next() % 4)
                for _ in 0..<flips {
                    let at = 4 + Int(random.next() % UInt64(bytes.readableBytes - 4))
                    bytes.setInteger(UInt8(truncatingIfNeeded: random.next()), at: at)
                }
                if round % 4 == 3 {
                    bytes.moveWriterIndex(to: 4 + Int(random.next() % UInt64(bytes.readableBytes - 4)))
                }
                if round % 8 == 5 { bytes.setInteger(UInt32(truncatingIfNeeded: random.next()), at: 0) }
            }
            do {
                _ = try ReplicationCodec.decodeFrame(from: &bytes)
            } catch {
                thrown += 1
            }
        }
        XCTAssertGreaterThan(thrown, 5_000, "most garbage must be refused")
    }

    /// A batch whose offsets, epoch or CRC disagree with its entry is refused at decode.
    func testEntryPayloadMustMatchItsEntry() throws {
        let batch = try stampedBatch("x", at: 10, term: 3)
        XCTAssertNoThrow(
            try BatchPayload(validating: batch, firstIndex: LogIndex(10), lastIndex: LogIndex(11), term: Term(3)))
        XCTAssertThrowsError(
            try BatchPayload(validating: batch, firstIndex: LogIndex(11), lastIndex: LogIndex(12), term: Term(3)))
        XCTAssertThrowsError(
            try BatchPayload(validating: batch, firstIndex: LogIndex(10), lastIndex: LogIndex(11), term: Term(4)))
        XCTAssertThrowsError(
            try BatchPayload(validating: batch, firstIndex: LogIndex(10), lastIndex: LogIndex(12), term: Term(3)))
        var corrupt = batch
        corrupt.setInteger(UInt8(0xFF), at: corrupt.writerIndex - 1)
        XCTAssertThrowsError(
            try BatchPayload(validating: corrupt, firstIndex: LogIndex(10), lastIndex: LogIndex(11), term: Term(3)))
    }

    /// Heartbeats of many groups to one peer leave as one frame per peer; splitting gives back the messages.
    func testCoalescerMergesHeartbeatsPerPeerAndSplitsThemBack() throws {
        var coalescer = HeartbeatCoalescer()
        var sent: [ReplicationMessage] = []
        for partition in 0..<50 {
            for peer in [2, 3] {
                let group = GroupID(topic: "t", partition: Int32(partition))
                let beat = ReplicationMessage(
                    group: group,
                    message: Message(
                        from: NodeID(1), to: NodeID(UInt64(peer)), term: Term(UInt64(partition + 1)),
                        kind: partition % 2 == 0 ? .heartbeat(commit: LogIndex(Int64(partition))) : .heartbeatResponse))
                XCTAssertNil(coalescer.route(beat))
                sent.append(beat)
            }
        }
        let append = ReplicationMessage(
            group: group,
            message: Message(
                from: NodeID(1), to: NodeID(2), term: Term(1), kind: .appendResponse(.accepted(match: .none))))
        guard case .message? = coalescer.route(append) else { return XCTFail("a non-heartbeat must pass through") }
        XCTAssertEqual(coalescer.pendingCount, 100)
        let frames = coalescer.flush()
        XCTAssertEqual(frames.count, 2)
        XCTAssertEqual(coalescer.pendingCount, 0)
        var received: [ReplicationMessage] = []
        for frame in frames {
            var bytes = encode(frame)
            guard case .heartbeats(let beats)? = try ReplicationCodec.decodeFrame(from: &bytes) else {
                return XCTFail("expected coalesced heartbeats")
            }
            received += beats.split()
        }
        func key(_ m: ReplicationMessage) -> String {
            "\(m.group) \(m.message.from)->\(m.message.to) \(m.message.term) \(m.message.kind)"
        }
        XCTAssertEqual(received.map(key).sorted(), sent.map(key).sorted())
    }
}
