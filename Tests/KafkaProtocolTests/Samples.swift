import Foundation
import KafkaProtocol
import NIOCore

/// A buffer holding `bytes`.
func buffer(_ bytes: [UInt8]) -> ByteBuffer {
    var result = ByteBufferAllocator().buffer(capacity: bytes.count)
    result.writeBytes(bytes)
    return result
}

/// The readable bytes of `buffer`.
func bytes(_ buffer: ByteBuffer) -> [UInt8] {
    buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? []
}

/// Strips the int32 size prefix of an encoded frame (what KafkaFrameDecoder would emit).
func payload(ofFrame frame: ByteBuffer) -> ByteBuffer {
    var copy = frame
    copy.moveReaderIndex(forwardBy: 4)
    return copy
}

/// One filled-in value of every request and response body, at each implemented version.
enum Samples {
    static let records = buffer(Array(0..<70).map { UInt8($0) })

    static let requests: [(version: Int16, request: KafkaRequest)] = [
        (
            7,
            .produce(
                ProduceRequest(
                    transactionalId: nil, acks: -1, timeoutMs: 30_000,
                    topicData: [
                        .init(
                            name: "orders",
                            partitionData: [.init(index: 0, records: records), .init(index: 1, records: nil)]),
                        .init(name: "é-ünïcode", partitionData: []),
                    ]))
        ),
        (
            11,
            .fetch(
                FetchRequest(
                    replicaId: -1, maxWaitMs: 500, minBytes: 1, maxBytes: 52_428_800, isolationLevel: 0,
                    sessionId: 0, sessionEpoch: -1,
                    topics: [
                        .init(
                            topic: "orders",
                            partitions: [
                                .init(
                                    partition: 0, currentLeaderEpoch: -1, fetchOffset: 42, logStartOffset: -1,
                                    partitionMaxBytes: 1_048_576)
                            ])
                    ],
                    forgottenTopicsData: [.init(topic: "old", partitions: [3, 4])],
                    rackId: ""))
        ),
        (
            2,
            .listOffsets(
                ListOffsetsRequest(
                    replicaId: -1, isolationLevel: 1,
                    topics: [
                        .init(
                            name: "orders",
                            partitions: [
                                .init(partitionIndex: 0, timestamp: -1),
                                .init(partitionIndex: 1, timestamp: -2),
                            ])
                    ]))
        ),
        (
            4,
            .metadata(
                MetadataRequest(
                    topics: [.init(name: "orders"), .init(name: "audit")],
                    allowAutoTopicCreation: true))
        ),
        (4, .metadata(MetadataRequest(topics: nil, allowAutoTopicCreation: false))),
        (
            3,
            .offsetCommit(
                OffsetCommitRequest(
                    groupId: "g1", generationId: 3, memberId: "m-1", retentionTimeMs: -1,
                    topics: [
                        .init(
                            name: "orders",
                            partitions: [
                                .init(partitionIndex: 0, committedOffset: 100, committedMetadata: nil),
                                .init(partitionIndex: 1, committedOffset: 7, committedMetadata: "meta"),
                            ])
                    ]))
        ),
        (
            3,
            .offsetFetch(
                OffsetFetchRequest(
                    groupId: "g1", topics: [.init(name: "orders", partitionIndexes: [0, 1, 2])]))
        ),
        (3, .offsetFetch(OffsetFetchRequest(groupId: "g1", topics: nil))),
        (1, .findCoordinator(FindCoordinatorRequest(key: "g1", keyType: 0))),
        (
            5,
            .joinGroup(
                JoinGroupRequest(
                    groupId: "g1", sessionTimeoutMs: 10_000, rebalanceTimeoutMs: 300_000, memberId: "",
                    groupInstanceId: "instance-1", protocolType: "consumer",
                    protocols: [
                        .init(name: "range", metadata: buffer([0, 1, 2])),
                        .init(name: "roundrobin", metadata: buffer([])),
                    ]))
        ),
        (1, .heartbeat(HeartbeatRequest(groupId: "g1", generationId: 3, memberId: "m-1"))),
        (1, .leaveGroup(LeaveGroupRequest(groupId: "g1", memberId: "m-1"))),
        (
            3,
            .syncGroup(
                SyncGroupRequest(
                    groupId: "g1", generationId: 3, memberId: "m-1", groupInstanceId: nil,
                    assignments: [
                        .init(memberId: "m-1", assignment: buffer([9, 9])),
                        .init(memberId: "m-2", assignment: buffer([])),
                    ]))
        ),
        (3, .describeGroups(DescribeGroupsRequest(groups: ["g1", "g2"], includeAuthorizedOperations: false))),
        (2, .listGroups(ListGroupsRequest())),
        (0, .deleteGroups(DeleteGroupsRequest(groupsNames: ["g1"]))),
        (1, .deleteGroups(DeleteGroupsRequest(groupsNames: ["g1", "g2"]))),
        (0, .apiVersions(ApiVersionsRequest())),
        (1, .apiVersions(ApiVersionsRequest())),
        (2, .apiVersions(ApiVersionsRequest())),
        (3, .apiVersions(ApiVersionsRequest(clientSoftwareName: "keel-client", clientSoftwareVersion: "0.1.0"))),
        (
            3,
            .createTopics(
                CreateTopicsRequest(
                    topics: [
                        .init(
                            name: "orders", numPartitions: 3, replicationFactor: 3, assignments: [],
                            configs: [
                                .init(name: "retention.ms", value: "60000"),
                                .init(name: "cleanup.policy", value: nil),
                            ]),
                        .init(
                            name: "manual", numPartitions: -1, replicationFactor: -1,
                            assignments: [.init(partitionIndex: 0, brokerIds: [1, 2, 3])], configs: []),
                    ],
                    timeoutMs: 30_000, validateOnly: false))
        ),
        (1, .deleteTopics(DeleteTopicsRequest(topicNames: ["orders", "audit"], timeoutMs: 30_000))),
        (0, .initProducerId(InitProducerIdRequest(transactionalId: nil, transactionTimeoutMs: 60_000))),
        (1, .initProducerId(InitProducerIdRequest(transactionalId: "tx-1", transactionTimeoutMs: 60_000))),
        (
            1,
            .describeConfigs(
                DescribeConfigsRequest(
                    resources: [
                        .init(resourceType: 2, resourceName: "orders", configurationKeys: nil),
                        .init(resourceType: 4, resourceName: "1", configurationKeys: ["log.dirs"]),
                    ],
                    includeSynonyms: true))
        ),
    ]

    static let responses: [(version: Int16, response: any KafkaMessage)] = [
        (
            7,
            ProduceResponse(
                responses: [
                    .init(
                        name: "orders",
                        partitionResponses: [
                            .init(index: 0, errorCode: .none, baseOffset: 1000, logAppendTimeMs: -1, logStartOffset: 0),
                            .init(
                                index: 1, errorCode: .notLeaderOrFollower, baseOffset: -1, logAppendTimeMs: -1,
                                logStartOffset: -1),
                        ])
                ],
                throttleTimeMs: 5)
        ),
        (
            11,
            FetchResponse(
                throttleTimeMs: 0, errorCode: .none, sessionId: 0,
                responses: [
                    .init(
                        topic: "orders",
                        partitions: [
                            .init(
                                partitionIndex: 0, errorCode: .none, highWatermark: 50, lastStableOffset: 50,
                                logStartOffset: 0, abortedTransactions: nil, preferredReadReplica: -1,
                                records: .bytes(records)),
                            .init(
                                partitionIndex: 1, errorCode: .offsetOutOfRange, highWatermark: 5, lastStableOffset: 5,
                                logStartOffset: 0, abortedTransactions: [.init(producerId: 7, firstOffset: 3)],
                                preferredReadReplica: -1, records: .null),
                        ])
                ])
        ),
        (
            2,
            ListOffsetsResponse(
                throttleTimeMs: 0,
                topics: [
                    .init(
                        name: "orders",
                        partitions: [
                            .init(partitionIndex: 0, errorCode: .none, timestamp: -1, offset: 42)
                        ])
                ])
        ),
        (
            4,
            MetadataResponse(
                throttleTimeMs: 0,
                brokers: [
                    .init(nodeId: 1, host: "127.0.0.1", port: 9092, rack: nil),
                    .init(nodeId: 2, host: "127.0.0.1", port: 9093, rack: "r2"),
                ],
                clusterId: "keel-cluster", controllerId: 1,
                topics: [
                    .init(
                        errorCode: .none, name: "orders", isInternal: false,
                        partitions: [
                            .init(
                                errorCode: .none, partitionIndex: 0, leaderId: 1, replicaNodes: [1, 2], isrNodes: [1]),
                            .init(
                                errorCode: .leaderNotAvailable, partitionIndex: 1, leaderId: -1, replicaNodes: [1, 2],
                                isrNodes: []),
                        ])
                ])
        ),
        (
            3,
            OffsetCommitResponse(
                throttleTimeMs: 0,
                topics: [.init(name: "orders", partitions: [.init(partitionIndex: 0, errorCode: .illegalGeneration)])])
        ),
        (
            3,
            OffsetFetchResponse(
                throttleTimeMs: 0,
                topics: [
                    .init(
                        name: "orders",
                        partitions: [
                            .init(partitionIndex: 0, committedOffset: 100, metadata: nil, errorCode: .none),
                            .init(partitionIndex: 1, committedOffset: -1, metadata: "", errorCode: .none),
                        ])
                ],
                errorCode: .none)
        ),
        (
            1,
            FindCoordinatorResponse(
                throttleTimeMs: 0, errorCode: .none, errorMessage: nil, nodeId: 2, host: "127.0.0.1", port: 9093)
        ),
        (
            5,
            JoinGroupResponse(
                throttleTimeMs: 0, errorCode: .none, generationId: 4, protocolName: "range", leader: "m-1",
                memberId: "m-1",
                members: [
                    .init(memberId: "m-1", groupInstanceId: nil, metadata: buffer([1])),
                    .init(memberId: "m-2", groupInstanceId: "i-2", metadata: buffer([2, 2])),
                ])
        ),
        (1, HeartbeatResponse(throttleTimeMs: 0, errorCode: .rebalanceInProgress)),
        (1, LeaveGroupResponse(throttleTimeMs: 0, errorCode: .none)),
        (3, SyncGroupResponse(throttleTimeMs: 0, errorCode: .none, assignment: buffer([0, 1, 0, 0]))),
        (
            3,
            DescribeGroupsResponse(
                throttleTimeMs: 0,
                groups: [
                    .init(
                        errorCode: .none, groupId: "g1", groupState: "Stable", protocolType: "consumer",
                        protocolData: "range",
                        members: [
                            .init(
                                memberId: "m-1", clientId: "c", clientHost: "/127.0.0.1",
                                memberMetadata: buffer([1]), memberAssignment: buffer([2]))
                        ],
                        authorizedOperations: Int32.min)
                ])
        ),
        (
            2,
            ListGroupsResponse(
                throttleTimeMs: 0, errorCode: .none, groups: [.init(groupId: "g1", protocolType: "consumer")])
        ),
        (
            1,
            DeleteGroupsResponse(
                throttleTimeMs: 0,
                results: [.init(groupId: "g1", errorCode: .none), .init(groupId: "g2", errorCode: .nonEmptyGroup)])
        ),
        (0, ApiVersionsResponse.keel),
        (1, ApiVersionsResponse(apiKeys: ApiVersionsTable.advertised, throttleTimeMs: 3)),
        (2, ApiVersionsResponse(apiKeys: ApiVersionsTable.advertised, throttleTimeMs: 3)),
        (3, ApiVersionsResponse(apiKeys: ApiVersionsTable.advertised, throttleTimeMs: 3)),
        (0, ApiVersionsResponse.unsupportedVersion),
        (
            3,
            CreateTopicsResponse(
                throttleTimeMs: 0,
                topics: [
                    .init(name: "orders", errorCode: .topicAlreadyExists, errorMessage: "exists"),
                    .init(name: "new", errorCode: .none, errorMessage: nil),
                ])
        ),
        (1, DeleteTopicsResponse(throttleTimeMs: 0, responses: [.init(name: "orders", errorCode: .none)])),
        (0, InitProducerIdResponse(throttleTimeMs: 0, errorCode: .none, producerId: 4000, producerEpoch: 0)),
        (1, InitProducerIdResponse(throttleTimeMs: 0, errorCode: .none, producerId: 4001, producerEpoch: 2)),
        (
            1,
            DescribeConfigsResponse(
                throttleTimeMs: 0,
                results: [
                    .init(
                        errorCode: .none, errorMessage: nil, resourceType: 2, resourceName: "orders",
                        configs: [
                            .init(
                                name: "retention.ms", value: "604800000", readOnly: false, configSource: 5,
                                isSensitive: false,
                                synonyms: [.init(name: "log.retention.ms", value: nil, source: 4)]),
                            .init(
                                name: "cleanup.policy", value: "delete", readOnly: false, configSource: 1,
                                isSensitive: false, synonyms: []),
                        ])
                ])
        ),
    ]

    /// Every sample request as a frame payload (header + body), with its header.
    static var requestFrames: [(header: RequestHeader, payload: ByteBuffer)] {
        requests.enumerated().map { index, sample in
            let header = RequestHeader(
                apiKey: sample.request.apiKey, apiVersion: sample.version, correlationId: Int32(index + 1),
                clientId: index % 3 == 0 ? nil : "sample-client")
            var writer = KafkaWriter()
            header.encode(into: &writer)
            sample.request.encode(into: &writer, version: sample.version)
            return (header, writer.buffer)
        }
    }
}

extension Samples {
    /// The real clients' request frames under Fixtures/, without their size prefix (kafka-python's
    /// ApiVersions v4, which is answered rather than decoded, excluded).
    static var fixturePayloads: [ByteBuffer] {
        guard
            let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil),
            let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path)
        else { return [] }
        return names.sorted().filter { $0.hasSuffix(".bin") && !$0.contains("ApiVersions-v4") }.compactMap { name in
            guard let data = FileManager.default.contents(atPath: directory.appendingPathComponent(name).path),
                data.count >= 4
            else { return nil }
            return buffer(Array(data.dropFirst(4)))
        }
    }
}
