import KafkaProtocol
import NIOCore
import XCTest

final class MessageTests: XCTestCase {
    /// Every request, encoded by the client side, decodes on the broker side to the same header and body.
    func testEveryRequestRoundTripsThroughTheDispatcher() throws {
        XCTAssertEqual(
            Set(Samples.requests.map(\.request.apiKey)), Set(ApiKey.allCases), "a sample for every API")
        for (index, sample) in Samples.requests.enumerated() {
            let frame = encodeRequestFrame(sample.request, version: sample.version, correlationId: Int32(index))
            let decoded = try KafkaRequestDecoder.decode(frame: payload(ofFrame: frame))
            XCTAssertEqual(decoded.request, sample.request, "\(sample.request.apiKey) v\(sample.version)")
            XCTAssertEqual(decoded.header.apiVersion, sample.version)
            XCTAssertEqual(decoded.header.correlationId, Int32(index))
            XCTAssertEqual(decoded.header.clientId, "keel-test")
            let size = frame.getInteger(at: 0, endianness: .big, as: Int32.self)
            XCTAssertEqual(size.map(Int.init), frame.readableBytes - 4)
        }
    }

    /// Every response, encoded by the broker side, decodes on the client side to the same body.
    func testEveryResponseRoundTrips() throws {
        XCTAssertEqual(
            Set(Samples.responses.map { type(of: $0.response).apiKey }), Set(ApiKey.allCases),
            "a sample for every API")
        for (index, sample) in Samples.responses.enumerated() {
            try assertResponseRoundTrip(sample.response, version: sample.version, correlationId: Int32(index))
        }
    }

    private func assertResponseRoundTrip<M: KafkaMessage>(_ body: M, version: Int16, correlationId: Int32) throws {
        let frame = KafkaResponseEncoder.encodeFrame(body, version: version, correlationId: correlationId)
        XCTAssertEqual(frame.getInteger(at: 0, endianness: .big, as: Int32.self).map(Int.init), frame.readableBytes - 4)
        let payload = payload(ofFrame: frame)
        XCTAssertEqual(try KafkaResponseDecoder.correlationId(of: payload), correlationId)
        let decoded = try KafkaResponseDecoder.decode(M.self, frame: payload, version: version)
        XCTAssertEqual(decoded.header.correlationId, correlationId)
        XCTAssertEqual(decoded.body, body, "\(M.apiKey) v\(version)")
    }

    private func encodeRequestFrame(_ request: KafkaRequest, version: Int16, correlationId: Int32) -> ByteBuffer {
        switch request {
        case .produce(let body): frame(body, version, correlationId)
        case .fetch(let body): frame(body, version, correlationId)
        case .listOffsets(let body): frame(body, version, correlationId)
        case .metadata(let body): frame(body, version, correlationId)
        case .offsetCommit(let body): frame(body, version, correlationId)
        case .offsetFetch(let body): frame(body, version, correlationId)
        case .findCoordinator(let body): frame(body, version, correlationId)
        case .joinGroup(let body): frame(body, version, correlationId)
        case .heartbeat(let body): frame(body, version, correlationId)
        case .leaveGroup(let body): frame(body, version, correlationId)
        case .syncGroup(let body): frame(body, version, correlationId)
        case .describeGroups(let body): frame(body, version, correlationId)
        case .listGroups(let body): frame(body, version, correlationId)
        case .apiVersions(let body): frame(body, version, correlationId)
        case .createTopics(let body): frame(body, version, correlationId)
        case .deleteTopics(let body): frame(body, version, correlationId)
        case .initProducerId(let body): frame(body, version, correlationId)
        case .describeConfigs(let body): frame(body, version, correlationId)
        case .deleteGroups(let body): frame(body, version, correlationId)
        }
    }

    private func frame<R: KafkaRequestMessage>(_ body: R, _ version: Int16, _ correlationId: Int32) -> ByteBuffer {
        KafkaRequestEncoder.encodeFrame(body, version: version, correlationId: correlationId, clientId: "keel-test")
    }

    /// A Fetch response written as parts, with file bytes spliced in for the placeholders, is
    /// byte-identical to the same response encoded with the records in memory.
    func testFetchResponsePartsSpliceToThePlainEncoding() throws {
        let first = buffer(Array(repeating: 0xAB, count: 100))
        let second = buffer(Array(repeating: 0xCD, count: 33))
        func response(_ a: FetchRecords, _ b: FetchRecords) -> FetchResponse {
            FetchResponse(
                throttleTimeMs: 0, errorCode: .none, sessionId: 0,
                responses: [
                    .init(
                        topic: "t",
                        partitions: [
                            .init(
                                partitionIndex: 0, errorCode: .none, highWatermark: 10, lastStableOffset: 10,
                                logStartOffset: 0, abortedTransactions: nil, preferredReadReplica: -1, records: a),
                            .init(
                                partitionIndex: 1, errorCode: .none, highWatermark: 3, lastStableOffset: 3,
                                logStartOffset: 0, abortedTransactions: [], preferredReadReplica: -1, records: .null),
                        ]),
                    .init(
                        topic: "u",
                        partitions: [
                            .init(
                                partitionIndex: 0, errorCode: .none, highWatermark: 1, lastStableOffset: 1,
                                logStartOffset: 0, abortedTransactions: nil, preferredReadReplica: -1, records: b)
                        ]),
                ])
        }
        let plain = KafkaResponseEncoder.encodeFrame(
            response(.bytes(first), .bytes(second)), version: 11, correlationId: 9)
        let parts = response(.deferred(length: 100, token: 1), .deferred(length: 33, token: 2))
            .encodeFrameParts(correlationId: 9)
        var spliced = ByteBufferAllocator().buffer(capacity: plain.readableBytes)
        var placeholders: [Int] = []
        for part in parts {
            switch part {
            case .bytes(let bytes): spliced.writeImmutableBuffer(bytes)
            case .records(let length, let token):
                placeholders.append(token)
                spliced.writeImmutableBuffer(token == 1 ? first : second)
                XCTAssertEqual(length, token == 1 ? 100 : 33)
            }
        }
        XCTAssertEqual(placeholders, [1, 2])
        XCTAssertEqual(bytes(spliced), bytes(plain))
        let inMemoryParts = response(.bytes(first), .null).encodeFrameParts(correlationId: 9)
        XCTAssertEqual(inMemoryParts.count, 1, "records in memory need no placeholder")
    }

    /// The advertised table is PROTOCOL.md §3's "Advertise" column, and each API implements one version
    /// (ApiVersions 0–3, InitProducerId 0–1).
    func testAdvertisedTable() {
        let advertised = ApiVersionsTable.entries.map { [$0.apiKey.rawValue, $0.minVersion, $0.maxVersion] }
        XCTAssertEqual(
            advertised,
            [
                [0, 0, 7], [1, 4, 11], [2, 1, 2], [3, 0, 4], [8, 2, 3], [9, 1, 3], [10, 0, 1], [11, 0, 5], [12, 0, 1],
                [13, 0, 1], [14, 0, 3], [15, 0, 3], [16, 0, 2], [18, 0, 3], [19, 0, 3], [20, 0, 1], [22, 0, 1],
                [32, 0, 1], [42, 0, 1],
            ])
        for entry in ApiVersionsTable.entries {
            XCTAssertTrue(
                entry.implemented.lowerBound >= entry.minVersion && entry.implemented.upperBound == entry.maxVersion)
            XCTAssertFalse(entry.apiKey.isFlexible(entry.implemented.lowerBound) && entry.apiKey != .apiVersions)
        }
        // DeleteGroups v0 and v1 share a layout; the broker serves both.
        XCTAssertEqual(ApiVersionsTable.unadvertised.map(\.apiKey), [])
        XCTAssertTrue(ApiVersionsTable.isAdvertised(.deleteGroups))
        XCTAssertTrue(ApiVersionsTable.isAdvertised(.joinGroup))
        XCTAssertEqual(ApiVersionsTable.implementedVersions(of: .deleteGroups), 0...1)
        XCTAssertEqual(Set(ApiVersionsTable.entries.map(\.apiKey)), Set(ApiKey.allCases))
        XCTAssertEqual(ApiVersionsTable.implementedVersions(of: .apiVersions), 0...3)
        XCTAssertEqual(ApiVersionsTable.implementedVersions(of: .initProducerId), 0...1)
        XCTAssertEqual(ApiVersionsTable.preferredVersion(of: .fetch), 11)
    }

    /// librdkafka's mock cluster answers a refused JoinGroup with null protocol, leader and member
    /// strings, and a refused SyncGroup with a null assignment; both read as empty (as librdkafka
    /// reads them) rather than failing the whole answer.
    func testGroupErrorAnswersWithNullsDecode() throws {
        var join = KafkaWriter()
        ResponseHeader(correlationId: 5).encode(into: &join, version: 0)
        join.writeInt32(0)  // throttle
        join.writeInt16(ErrorCode.notCoordinator.rawValue)
        join.writeInt32(-1)  // generation
        for _ in 0..<3 { join.writeNullableString(nil) }  // protocol name, leader, member id
        join.writeInt32(0)  // members
        let joined = try KafkaResponseDecoder.decode(JoinGroupResponse.self, frame: join.buffer, version: 5).body
        XCTAssertEqual(joined.errorCode, .notCoordinator)
        XCTAssertEqual([joined.protocolName, joined.leader, joined.memberId], ["", "", ""])

        var sync = KafkaWriter()
        ResponseHeader(correlationId: 6).encode(into: &sync, version: 0)
        sync.writeInt32(0)
        sync.writeInt16(ErrorCode.invalidRequest.rawValue)
        sync.writeNullableBytes(nil)
        let synced = try KafkaResponseDecoder.decode(SyncGroupResponse.self, frame: sync.buffer, version: 3).body
        XCTAssertEqual(synced.errorCode, .invalidRequest)
        XCTAssertEqual(synced.assignment.readableBytes, 0)
    }

    /// An ApiVersions request of an unknown version is answered (not parsed) with the v0 error body.
    func testUnsupportedApiVersionsIsAnsweredNotParsed() throws {
        var writer = KafkaWriter()
        RequestHeader(apiKey: .apiVersions, apiVersion: 9, correlationId: 77, clientId: "future").encode(into: &writer)
        writer.buffer.writeBytes([0xDE, 0xAD, 0xBE, 0xEF])  // a body we must not read
        XCTAssertThrowsError(try KafkaRequestDecoder.decode(frame: writer.buffer)) { error in
            XCTAssertEqual(
                error as? RequestDecodeFailure,
                .answerUnsupportedVersion(
                    RequestHeader(apiKey: .apiVersions, apiVersion: 9, correlationId: 77, clientId: "future")))
        }
        let answer = KafkaResponseEncoder.unsupportedApiVersionsFrame(correlationId: 77)
        // A client that asked for v3 reads the error body in the v0 layout.
        let decoded = try KafkaResponseDecoder.decode(
            ApiVersionsResponse.self, frame: payload(ofFrame: answer), version: 3)
        XCTAssertEqual(decoded.header.correlationId, 77)
        XCTAssertEqual(decoded.body.errorCode, .unsupportedVersion)
        XCTAssertEqual(decoded.body.apiKeys, ApiVersionsTable.advertised)
    }

    /// Other unimplemented versions, unknown keys, and leftover bytes close the connection.
    func testRefusalsCloseTheConnection() {
        func failure(_ header: (Int16, Int16), body: [UInt8]) -> RequestDecodeFailure? {
            var frame = buffer([
                UInt8(header.0 >> 8), UInt8(header.0 & 0xFF), 0, UInt8(header.1), 0, 0, 0, 5, 0xFF, 0xFF,
            ])
            frame.writeBytes(body)
            do {
                _ = try KafkaRequestDecoder.decode(frame: frame)
                return nil
            } catch {
                return error
            }
        }
        let metadataV0 = RequestHeader(apiKey: .metadata, apiVersion: 0, correlationId: 5, clientId: nil)
        XCTAssertEqual(
            failure((3, 0), body: [0, 0, 0, 0]),
            .closeConnection(header: metadataV0, reason: .unsupportedVersion(apiKey: .metadata, version: 0)))
        XCTAssertEqual(failure((99, 0), body: []), .closeConnection(header: nil, reason: .unknownApiKey(99)))
        let heartbeatV1 = RequestHeader(apiKey: .heartbeat, apiVersion: 1, correlationId: 5, clientId: nil)
        XCTAssertEqual(
            failure((12, 1), body: [0, 1, 0x67, 0, 0, 0, 1, 0, 1, 0x6D, 0xAA]),
            .closeConnection(header: heartbeatV1, reason: .trailingBytes(1)))
        XCTAssertEqual(
            failure((12, 1), body: [0, 1, 0x67, 0, 0]),
            .closeConnection(header: heartbeatV1, reason: .truncated(needed: 4, remaining: 2)))
    }
}
