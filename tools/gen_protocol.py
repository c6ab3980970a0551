#!/usr/bin/env python3
"""Generates Sources/KafkaProtocol/Messages/*.swift from the schema table below.

Each body struct of a non-flexible API version is a list of fields in wire order, taken from
apache/kafka clients/src/main/resources/common/message/<Name>{Request,Response}.json at the
one version Keel implements (PROTOCOL.md section 4). Edit the table, run
`python3 tools/gen_protocol.py`, and commit both. ApiVersions (flexible, four versions) and the
Fetch response's record placeholders are written by hand.
"""
import os
import textwrap

# Type name -> (Swift type, read expression, write statement with {v}, minimum wire bytes).
PRIMS = {
    "int8": ("Int8", "try reader.readInt8()", "writer.writeInt8({v})", 1),
    "int16": ("Int16", "try reader.readInt16()", "writer.writeInt16({v})", 2),
    "int32": ("Int32", "try reader.readInt32()", "writer.writeInt32({v})", 4),
    "int64": ("Int64", "try reader.readInt64()", "writer.writeInt64({v})", 8),
    "bool": ("Bool", "try reader.readBool()", "writer.writeBool({v})", 1),
    "error": ("ErrorCode", "ErrorCode(try reader.readInt16())", "writer.writeInt16({v}.rawValue)", 2),
    "string": ("String", "try reader.readString()", "writer.writeString({v})", 2),
    "string?": ("String?", "try reader.readNullableString()", "writer.writeNullableString({v})", 2),
    "bytes": ("ByteBuffer", "try reader.readBytes()", "writer.writeBytes({v})", 4),
    # Never null by the schema, but a null is read as empty: response fields that librdkafka's
    # mock cluster writes as null in its error answers (librdkafka itself reads them leniently).
    "string~": ("String", "try reader.readStringNullAsEmpty()", "writer.writeString({v})", 2),
    "bytes~": ("ByteBuffer", "try reader.readBytesNullAsEmpty()", "writer.writeBytes({v})", 4),
    "bytes?": ("ByteBuffer?", "try reader.readNullableBytes()", "writer.writeNullableBytes({v})", 4),
    "records": ("ByteBuffer?", "try reader.readRecords()", "writer.writeRecords({v})", 4),
    "fetchrecords": ("FetchRecords", "FetchRecords(try reader.readRecords())", "{v}.write(to: &writer)", 4),
    "[int32]": ("[Int32]", "try reader.readInt32Array()", "writer.writeInt32Array({v})", 4),
    "[string]": ("[String]", "try reader.readStringArray()", "writer.writeStringArray({v})", 4),
    "[string]?": ("[String]?", "try reader.readNullableStringArray()", "writer.writeNullableStringArray({v})", 4),
}

DEFAULTS = {"throttleTimeMs": "0", "errorCode": ".none"}


def F(name, type_, doc, struct=None):
    """A field: camelCase name, type (a PRIMS key, or "[Name]"/"[Name]?" with struct given), doc."""
    return {"name": name, "type": type_, "doc": doc, "struct": struct}


def S(name, doc, fields):
    """A nested array-element struct."""
    return {"name": name, "doc": doc, "fields": fields}


def field_info(f):
    t = f["type"]
    if t in PRIMS:
        return PRIMS[t]
    st = f["struct"]["name"]
    if t.endswith("?"):
        return (f"[{st}]?", f"try reader.readNullableArray(of: {st}.self)", "writer.writeNullableArray({v})", 4)
    return (f"[{st}]", f"try reader.readArray(of: {st}.self)", "writer.writeArray({v})", 4)


def struct_body(fields, indent, nested_out):
    """Emits properties, init, minWireBytes, read, write for fields."""
    pad = " " * indent
    out = []
    for f in fields:
        if f["struct"] is not None and f["struct"] not in nested_out:
            nested_out.append(f["struct"])
    for f in fields:
        swift_type = field_info(f)[0]
        out.append(f"{pad}/// {f['doc']}")
        out.append(f"{pad}public var {f['name']}: {swift_type}")
    if fields:
        out.append("")
    params = []
    for f in fields:
        p = f"{f['name']}: {field_info(f)[0]}"
        if f["name"] in DEFAULTS:
            p += f" = {DEFAULTS[f['name']]}"
        params.append(p)
    out.append(f"{pad}/// Creates a value with every field given." if params else f"{pad}/// Creates the empty value.")
    one_line = f"{pad}public init({', '.join(params)}) {{"
    if not params:
        out.append(f"{pad}public init() {{}}")
    else:
        if len(one_line) <= 120:
            out.append(one_line)
        else:
            out.append(f"{pad}public init(")
            for i, p in enumerate(params):
                out.append(f"{pad}    {p}{',' if i < len(params) - 1 else ''}")
            out.append(f"{pad}) {{")
        for f in fields:
            out.append(f"{pad}    self.{f['name']} = {f['name']}")
        out.append(f"{pad}}}")
    out.append("")
    min_bytes = sum(field_info(f)[3] for f in fields) or 1
    out.append(f"{pad}static let minWireBytes = {min_bytes}")
    out.append("")
    out.append(f"{pad}static func read(from reader: inout KafkaReader) throws(KafkaProtocolError) -> Self {{")
    for f in fields:
        out.append(f"{pad}    let {f['name']} = {field_info(f)[1]}")
    if fields:
        args = [f"{f['name']}: {f['name']}" for f in fields]
        line = f"{pad}    return Self({', '.join(args)})"
        if len(line) <= 120:
            out.append(line)
        else:
            out.append(f"{pad}    return Self(")
            for i, a in enumerate(args):
                out.append(f"{pad}        {a}{',' if i < len(args) - 1 else ''}")
            out.append(f"{pad}    )")
    else:
        out.append(f"{pad}    Self()")
    out.append(f"{pad}}}")
    out.append("")
    if not fields:
        out.append(f"{pad}func write(to writer: inout KafkaWriter) {{}}")
        return out
    out.append(f"{pad}func write(to writer: inout KafkaWriter) {{")
    for f in fields:
        out.append(f"{pad}    " + field_info(f)[2].format(v=f["name"]))
    out.append(f"{pad}}}")
    return out


def emit_nested(structs, indent):
    pad = " " * indent
    out = []
    i = 0
    while i < len(structs):
        st = structs[i]
        inner = []
        body = struct_body(st["fields"], indent + 4, inner)
        out.append("")
        out.append(f"{pad}/// {st['doc']}")
        out.append(f"{pad}public struct {st['name']}: Sendable, Equatable, WireElement {{")
        out.extend(body)
        out.extend(emit_nested(inner, indent + 4))
        out.append(f"{pad}}}")
        i += 1
    return out


def message(name, api, doc, fields, response=None):
    out = []
    for line in doc.strip().split("\n"):
        out.append(f"/// {line}".rstrip())
    proto = "KafkaRequestMessage" if response else "KafkaMessage"
    out.append(f"public struct {name}: {proto}, WireElement {{")
    if response:
        out.append("    /// The response body type.")
        out.append(f"    public typealias Response = {response}")
    out.append(f"    /// The API key of this body.")
    out.append(f"    public static let apiKey = ApiKey.{api}")
    out.append("")
    nested = []
    out.extend(struct_body(fields, 4, nested))
    out.append("")
    out.append("    /// Writes the body (the version must be implemented; see `ApiVersionsTable`).")
    out.append("    public func encode(into writer: inout KafkaWriter, version: Int16) {")
    out.append("        Self.checkEncodable(version)")
    out.append("        write(to: &writer)")
    out.append("    }")
    out.append("")
    out.append("    /// Reads the body.")
    out.append("    public static func decode(")
    out.append("        from reader: inout KafkaReader,")
    out.append("        version: Int16")
    out.append("    ) throws(KafkaProtocolError) -> Self {")
    out.append("        try read(from: &reader)")
    out.append("    }")
    out.extend(emit_nested(nested, 4))
    out.append("}")
    return out


# ---------------------------------------------------------------------------------------------
# The schema table.

THROTTLE = F("throttleTimeMs", "int32", "Time the client should back off, in milliseconds (0 = none).")
ERROR = F("errorCode", "error", "The error, or NONE.")

FILES = {}

FILES["Metadata"] = [
    message("MetadataRequest", "metadata", """
Metadata request v4 (key 3).

Layout: `topics nullable array[{name string}]` (null = all topics, empty = none),
`allow_auto_topic_creation bool`.""", [
        F("topics", "[T]?", "The topics asked about; nil for all topics.",
          S("Topic", "One topic asked about.", [F("name", "string", "The topic name.")])),
        F("allowAutoTopicCreation", "bool", "Whether a missing topic may be created."),
    ], response="MetadataResponse"),
    message("MetadataResponse", "metadata", """
Metadata response v4.

Layout: `throttle_time_ms int32, brokers array[{node_id int32, host string, port int32,
rack nullable string}], cluster_id nullable string, controller_id int32, topics array[{error_code int16,
name string, is_internal bool, partitions array[{error_code int16, partition_index int32,
leader_id int32, replica_nodes array[int32], isr_nodes array[int32]}]}]`.""", [
        THROTTLE,
        F("brokers", "[T]", "Every live node.", S("Broker", "A node clients can connect to.", [
            F("nodeId", "int32", "The node id."),
            F("host", "string", "The host name clients connect to."),
            F("port", "int32", "The port clients connect to."),
            F("rack", "string?", "The rack, if any."),
        ])),
        F("clusterId", "string?", "The cluster id, if any."),
        F("controllerId", "int32", "The controller node id (-1 = none)."),
        F("topics", "[T]", "One entry per topic.", S("Topic", "A topic's metadata.", [
            ERROR,
            F("name", "string", "The topic name."),
            F("isInternal", "bool", "Whether the topic is internal."),
            F("partitions", "[T]", "One entry per partition.", S("Partition", "A partition's metadata.", [
                ERROR,
                F("partitionIndex", "int32", "The partition index."),
                F("leaderId", "int32", "The leader node id (-1 = none)."),
                F("replicaNodes", "[int32]", "All replica node ids."),
                F("isrNodes", "[int32]", "In-sync replica node ids."),
            ])),
        ])),
    ]),
]

FILES["Produce"] = [
    message("ProduceRequest", "produce", """
Produce request v7 (key 0).

Layout: `transactional_id nullable string, acks int16, timeout_ms int32, topic_data array[{name string,
partition_data array[{index int32, records nullable records}]}]`. Records stay an undecoded slice of
the request frame (no copy); the broker validates the batch header in place.""", [
        F("transactionalId", "string?", "The transactional id, or nil."),
        F("acks", "int16", "0 (no response), 1 (leader append) or -1 (all: committed)."),
        F("timeoutMs", "int32", "How long to wait for acks=-1, in milliseconds."),
        F("topicData", "[T]", "The data per topic.", S("TopicData", "A topic's data.", [
            F("name", "string", "The topic name."),
            F("partitionData", "[T]", "The data per partition.", S("PartitionData", "A partition's data.", [
                F("index", "int32", "The partition index."),
                F("records", "records", "The record batch bytes, undecoded."),
            ])),
        ])),
    ], response="ProduceResponse"),
    message("ProduceResponse", "produce", """
Produce response v7.

Layout: `responses array[{name string, partition_responses array[{index int32, error_code int16,
base_offset int64, log_append_time_ms int64, log_start_offset int64}]}], throttle_time_ms int32`
(throttle last).""", [
        F("responses", "[T]", "One entry per topic.", S("TopicResponse", "A topic's results.", [
            F("name", "string", "The topic name."),
            F("partitionResponses", "[T]", "One entry per partition.", S("PartitionResponse", "A partition's result.", [
                F("index", "int32", "The partition index."),
                ERROR,
                F("baseOffset", "int64", "The offset assigned to the first record."),
                F("logAppendTimeMs", "int64", "The append time if the topic uses LogAppendTime, else -1."),
                F("logStartOffset", "int64", "The partition's log start offset."),
            ])),
        ])),
        THROTTLE,
    ]),
]

FILES["Fetch"] = [
    message("FetchRequest", "fetch", """
Fetch request v11 (key 1).

Layout: `replica_id int32, max_wait_ms int32, min_bytes int32, max_bytes int32, isolation_level int8,
session_id int32, session_epoch int32, topics array[{topic string, partitions array[{partition int32,
current_leader_epoch int32, fetch_offset int64, log_start_offset int64, partition_max_bytes int32}]}],
forgotten_topics_data array[{topic string, partitions array[int32]}], rack_id string`.""", [
        F("replicaId", "int32", "The follower's node id, or -1 for a consumer."),
        F("maxWaitMs", "int32", "The longest the broker may hold the request, in milliseconds."),
        F("minBytes", "int32", "The least data to wait for, in bytes."),
        F("maxBytes", "int32", "The most data to return, in bytes (the first batch may exceed it)."),
        F("isolationLevel", "int8", "0 read_uncommitted, 1 read_committed."),
        F("sessionId", "int32", "The fetch session id (0 = none)."),
        F("sessionEpoch", "int32", "The fetch session epoch (-1 = sessionless)."),
        F("topics", "[T]", "The partitions to fetch.", S("Topic", "A topic to fetch from.", [
            F("topic", "string", "The topic name."),
            F("partitions", "[T]", "The partitions to fetch.", S("Partition", "A partition to fetch from.", [
                F("partition", "int32", "The partition index."),
                F("currentLeaderEpoch", "int32", "The leader epoch the client knows (-1 = unknown)."),
                F("fetchOffset", "int64", "The first offset wanted."),
                F("logStartOffset", "int64", "The follower's log start offset (-1 for consumers)."),
                F("partitionMaxBytes", "int32", "The most data to return for this partition, in bytes."),
            ])),
        ])),
        F("forgottenTopicsData", "[T]", "Partitions to drop from the fetch session.",
          S("ForgottenTopic", "Partitions of a topic to forget.", [
              F("topic", "string", "The topic name."),
              F("partitions", "[int32]", "The partition indexes."),
          ])),
        F("rackId", "string", "The consumer's rack (\"\" = none)."),
    ], response="FetchResponse"),
    message("FetchResponse", "fetch", """
Fetch response v11.

Layout: `throttle_time_ms int32, error_code int16, session_id int32, responses array[{topic string,
partitions array[{partition_index int32, error_code int16, high_watermark int64, last_stable_offset int64,
log_start_offset int64, aborted_transactions nullable array[{producer_id int64, first_offset int64}],
preferred_read_replica int32, records nullable records}]}]`.

`encode` needs every `records` in memory; `encodeFrameParts` leaves `.deferred` records out so that
the server can send file regions in their place.""", [
        THROTTLE,
        ERROR,
        F("sessionId", "int32", "The fetch session id (0 = sessionless)."),
        F("responses", "[T]", "One entry per topic.", S("TopicResponse", "A topic's data.", [
            F("topic", "string", "The topic name."),
            F("partitions", "[T]", "One entry per partition.", S("PartitionData", "A partition's data.", [
                F("partitionIndex", "int32", "The partition index."),
                ERROR,
                F("highWatermark", "int64", "The high watermark."),
                F("lastStableOffset", "int64", "The last stable offset (= high watermark without transactions)."),
                F("logStartOffset", "int64", "The log start offset."),
                F("abortedTransactions", "[T]?", "Aborted transactions in range, or nil.",
                  S("AbortedTransaction", "An aborted transaction.", [
                      F("producerId", "int64", "The producer id."),
                      F("firstOffset", "int64", "The first offset of the transaction."),
                  ])),
                F("preferredReadReplica", "int32", "The replica to read from instead (-1 = this one)."),
                F("records", "fetchrecords", "The record batches."),
            ])),
        ])),
    ]),
]

FILES["ListOffsets"] = [
    message("ListOffsetsRequest", "listOffsets", """
ListOffsets request v2 (key 2).

Layout: `replica_id int32, isolation_level int8, topics array[{name string,
partitions array[{partition_index int32, timestamp int64}]}]`. Timestamp -1 = latest, -2 = earliest.""", [
        F("replicaId", "int32", "The follower's node id, or -1 for a client."),
        F("isolationLevel", "int8", "0 read_uncommitted, 1 read_committed."),
        F("topics", "[T]", "The partitions asked about.", S("Topic", "A topic asked about.", [
            F("name", "string", "The topic name."),
            F("partitions", "[T]", "The partitions asked about.", S("Partition", "A partition asked about.", [
                F("partitionIndex", "int32", "The partition index."),
                F("timestamp", "int64", "The target timestamp (-1 latest, -2 earliest)."),
            ])),
        ])),
    ], response="ListOffsetsResponse"),
    message("ListOffsetsResponse", "listOffsets", """
ListOffsets response v2.

Layout: `throttle_time_ms int32, topics array[{name string, partitions array[{partition_index int32,
error_code int16, timestamp int64, offset int64}]}]`.""", [
        THROTTLE,
        F("topics", "[T]", "One entry per topic.", S("Topic", "A topic's answers.", [
            F("name", "string", "The topic name."),
            F("partitions", "[T]", "One entry per partition.", S("Partition", "A partition's answer.", [
                F("partitionIndex", "int32", "The partition index."),
                ERROR,
                F("timestamp", "int64", "The timestamp of the offset found (-1 = none)."),
                F("offset", "int64", "The offset found (-1 = none)."),
            ])),
        ])),
    ]),
]

FILES["TopicAdmin"] = [
    message("CreateTopicsRequest", "createTopics", """
CreateTopics request v3 (key 19).

Layout: `topics array[{name string, num_partitions int32, replication_factor int16,
assignments array[{partition_index int32, broker_ids array[int32]}],
configs array[{name string, value nullable string}]}], timeout_ms int32, validate_only bool`.""", [
        F("topics", "[T]", "The topics to create.", S("Topic", "A topic to create.", [
            F("name", "string", "The topic name."),
            F("numPartitions", "int32", "The partition count (-1 if assignments are given)."),
            F("replicationFactor", "int16", "The replication factor (-1 if assignments are given)."),
            F("assignments", "[T]", "Manual replica assignments.", S("Assignment", "A manual assignment.", [
                F("partitionIndex", "int32", "The partition index."),
                F("brokerIds", "[int32]", "The replica node ids."),
            ])),
            F("configs", "[T]", "Topic configuration overrides.", S("Config", "A configuration entry.", [
                F("name", "string", "The configuration name."),
                F("value", "string?", "The value, or nil."),
            ])),
        ])),
        F("timeoutMs", "int32", "How long to wait for creation, in milliseconds."),
        F("validateOnly", "bool", "Whether to validate without creating."),
    ], response="CreateTopicsResponse"),
    message("CreateTopicsResponse", "createTopics", """
CreateTopics response v3.

Layout: `throttle_time_ms int32, topics array[{name string, error_code int16, error_message nullable string}]`.""", [
        THROTTLE,
        F("topics", "[T]", "One entry per topic.", S("Topic", "A topic's result.", [
            F("name", "string", "The topic name."),
            ERROR,
            F("errorMessage", "string?", "A human-readable error, or nil."),
        ])),
    ]),
    message("DeleteTopicsRequest", "deleteTopics", """
DeleteTopics request v1 (key 20).

Layout: `topic_names array[string], timeout_ms int32`.""", [
        F("topicNames", "[string]", "The topics to delete."),
        F("timeoutMs", "int32", "How long to wait for deletion, in milliseconds."),
    ], response="DeleteTopicsResponse"),
    message("DeleteTopicsResponse", "deleteTopics", """
DeleteTopics response v1.

Layout: `throttle_time_ms int32, responses array[{name string, error_code int16}]`.""", [
        THROTTLE,
        F("responses", "[T]", "One entry per topic.", S("Result", "A topic's result.", [
            F("name", "string", "The topic name."),
            ERROR,
        ])),
    ]),
    message("DescribeConfigsRequest", "describeConfigs", """
DescribeConfigs request v1 (key 32).

Layout: `resources array[{resource_type int8, resource_name string,
configuration_keys nullable array[string]}], include_synonyms bool`. Resource type 2 = topic, 4 = broker.""", [
        F("resources", "[T]", "The resources asked about.", S("Resource", "A resource asked about.", [
            F("resourceType", "int8", "2 topic, 4 broker."),
            F("resourceName", "string", "The topic name or broker id."),
            F("configurationKeys", "[string]?", "The keys wanted, or nil for all."),
        ])),
        F("includeSynonyms", "bool", "Whether to list synonyms."),
    ], response="DescribeConfigsResponse"),
    message("DescribeConfigsResponse", "describeConfigs", """
DescribeConfigs response v1.

Layout: `throttle_time_ms int32, results array[{error_code int16, error_message nullable string,
resource_type int8, resource_name string, configs array[{name string, value nullable string,
read_only bool, config_source int8, is_sensitive bool, synonyms array[{name string,
value nullable string, source int8}]}]}]`. Config source: 1 topic, 2 dynamic broker,
3 dynamic default broker, 4 static broker, 5 default.""", [
        THROTTLE,
        F("results", "[T]", "One entry per resource.", S("Result", "A resource's configuration.", [
            ERROR,
            F("errorMessage", "string?", "A human-readable error, or nil."),
            F("resourceType", "int8", "2 topic, 4 broker."),
            F("resourceName", "string", "The topic name or broker id."),
            F("configs", "[T]", "The configuration entries.", S("Config", "A configuration entry.", [
                F("name", "string", "The configuration name."),
                F("value", "string?", "The value, or nil (e.g. sensitive)."),
                F("readOnly", "bool", "Whether the value cannot be changed."),
                F("configSource", "int8", "Where the value comes from (5 = default)."),
                F("isSensitive", "bool", "Whether the value is secret."),
                F("synonyms", "[T]", "Other sources of this setting.", S("Synonym", "A synonym.", [
                    F("name", "string", "The synonym's name."),
                    F("value", "string?", "The synonym's value."),
                    F("source", "int8", "The synonym's source."),
                ])),
            ])),
        ])),
    ]),
]

FILES["InitProducerId"] = [
    message("InitProducerIdRequest", "initProducerId", """
InitProducerId request v0/v1 (key 22; both versions share this layout).

Layout: `transactional_id nullable string, transaction_timeout_ms int32`.""", [
        F("transactionalId", "string?", "The transactional id; nil for an idempotent-only producer."),
        F("transactionTimeoutMs", "int32", "The transaction timeout, in milliseconds."),
    ], response="InitProducerIdResponse"),
    message("InitProducerIdResponse", "initProducerId", """
InitProducerId response v0/v1.

Layout: `throttle_time_ms int32, error_code int16, producer_id int64, producer_epoch int16`.""", [
        THROTTLE,
        ERROR,
        F("producerId", "int64", "The producer id (-1 on error)."),
        F("producerEpoch", "int16", "The producer epoch."),
    ]),
]

FILES["Groups"] = [
    message("FindCoordinatorRequest", "findCoordinator", """
FindCoordinator request v1 (key 10).

Layout: `key string, key_type int8` (0 group, 1 transaction).""", [
        F("key", "string", "The group id or transactional id."),
        F("keyType", "int8", "0 group, 1 transaction."),
    ], response="FindCoordinatorResponse"),
    message("FindCoordinatorResponse", "findCoordinator", """
FindCoordinator response v1.

Layout: `throttle_time_ms int32, error_code int16, error_message nullable string, node_id int32,
host string, port int32`.""", [
        THROTTLE,
        ERROR,
        F("errorMessage", "string?", "A human-readable error, or nil."),
        F("nodeId", "int32", "The coordinator's node id."),
        F("host", "string", "The coordinator's host."),
        F("port", "int32", "The coordinator's port."),
    ]),
    message("JoinGroupRequest", "joinGroup", """
JoinGroup request v5 (key 11).

Layout: `group_id string, session_timeout_ms int32, rebalance_timeout_ms int32, member_id string,
group_instance_id nullable string, protocol_type string, protocols array[{name string, metadata bytes}]`.""", [
        F("groupId", "string", "The group id."),
        F("sessionTimeoutMs", "int32", "The member's session timeout, in milliseconds."),
        F("rebalanceTimeoutMs", "int32", "The longest a rebalance may wait for this member, in milliseconds."),
        F("memberId", "string", "The member id (\"\" for a new member)."),
        F("groupInstanceId", "string?", "The static instance id, or nil."),
        F("protocolType", "string", "The protocol type (\"consumer\")."),
        F("protocols", "[T]", "The protocols the member supports.", S("SupportedProtocol", "A supported protocol.", [
            F("name", "string", "The protocol (assignor) name."),
            F("metadata", "bytes", "The opaque protocol metadata."),
        ])),
    ], response="JoinGroupResponse"),
    message("JoinGroupResponse", "joinGroup", """
JoinGroup response v5.

Layout: `throttle_time_ms int32, error_code int16, generation_id int32, protocol_name string,
leader string, member_id string, members array[{member_id string, group_instance_id nullable string,
metadata bytes}]` (members only for the leader).""", [
        THROTTLE,
        ERROR,
        F("generationId", "int32", "The generation."),
        F("protocolName", "string~", "The chosen protocol (a null reads as \"\")."),
        F("leader", "string~", "The leader's member id (a null reads as \"\")."),
        F("memberId", "string~", "This member's id (a null reads as \"\")."),
        F("members", "[T]", "The members (leader only).", S("Member", "A group member.", [
            F("memberId", "string", "The member id."),
            F("groupInstanceId", "string?", "The static instance id, or nil."),
            F("metadata", "bytes", "The member's protocol metadata."),
        ])),
    ]),
    message("SyncGroupRequest", "syncGroup", """
SyncGroup request v3 (key 14).

Layout: `group_id string, generation_id int32, member_id string, group_instance_id nullable string,
assignments array[{member_id string, assignment bytes}]` (assignments only from the leader).""", [
        F("groupId", "string", "The group id."),
        F("generationId", "int32", "The generation."),
        F("memberId", "string", "The member id."),
        F("groupInstanceId", "string?", "The static instance id, or nil."),
        F("assignments", "[T]", "The leader's assignments.", S("Assignment", "A member's assignment.", [
            F("memberId", "string", "The member id."),
            F("assignment", "bytes", "The opaque assignment."),
        ])),
    ], response="SyncGroupResponse"),
    message("SyncGroupResponse", "syncGroup", """
SyncGroup response v3.

Layout: `throttle_time_ms int32, error_code int16, assignment bytes`.""", [
        THROTTLE,
        ERROR,
        F("assignment", "bytes~", "This member's opaque assignment (a null reads as empty)."),
    ]),
    message("HeartbeatRequest", "heartbeat", """
Heartbeat request v1 (key 12).

Layout: `group_id string, generation_id int32, member_id string`.""", [
        F("groupId", "string", "The group id."),
        F("generationId", "int32", "The generation."),
        F("memberId", "string", "The member id."),
    ], response="HeartbeatResponse"),
    message("HeartbeatResponse", "heartbeat", """
Heartbeat response v1.

Layout: `throttle_time_ms int32, error_code int16`.""", [THROTTLE, ERROR]),
    message("LeaveGroupRequest", "leaveGroup", """
LeaveGroup request v1 (key 13).

Layout: `group_id string, member_id string`.""", [
        F("groupId", "string", "The group id."),
        F("memberId", "string", "The member id."),
    ], response="LeaveGroupResponse"),
    message("LeaveGroupResponse", "leaveGroup", """
LeaveGroup response v1.

Layout: `throttle_time_ms int32, error_code int16`.""", [THROTTLE, ERROR]),
    message("OffsetCommitRequest", "offsetCommit", """
OffsetCommit request v3 (key 8).

Layout: `group_id string, generation_id int32, member_id string, retention_time_ms int64,
topics array[{name string, partitions array[{partition_index int32, committed_offset int64,
committed_metadata nullable string}]}]`. Generation -1 with member "" is a standalone commit.""", [
        F("groupId", "string", "The group id."),
        F("generationId", "int32", "The generation (-1 standalone)."),
        F("memberId", "string", "The member id (\"\" standalone)."),
        F("retentionTimeMs", "int64", "The retention, in milliseconds (-1 = broker default)."),
        F("topics", "[T]", "The offsets per topic.", S("Topic", "A topic's offsets.", [
            F("name", "string", "The topic name."),
            F("partitions", "[T]", "The offsets per partition.", S("Partition", "A partition's offset.", [
                F("partitionIndex", "int32", "The partition index."),
                F("committedOffset", "int64", "The offset to commit."),
                F("committedMetadata", "string?", "Client metadata, or nil."),
            ])),
        ])),
    ], response="OffsetCommitResponse"),
    message("OffsetCommitResponse", "offsetCommit", """
OffsetCommit response v3.

Layout: `throttle_time_ms int32, topics array[{name string, partitions array[{partition_index int32,
error_code int16}]}]`.""", [
        THROTTLE,
        F("topics", "[T]", "One entry per topic.", S("Topic", "A topic's results.", [
            F("name", "string", "The topic name."),
            F("partitions", "[T]", "One entry per partition.", S("Partition", "A partition's result.", [
                F("partitionIndex", "int32", "The partition index."),
                ERROR,
            ])),
        ])),
    ]),
    message("OffsetFetchRequest", "offsetFetch", """
OffsetFetch request v3 (key 9).

Layout: `group_id string, topics nullable array[{name string, partition_indexes array[int32]}]`
(null = every committed offset of the group).""", [
        F("groupId", "string", "The group id."),
        F("topics", "[T]?", "The partitions asked about, or nil for all.", S("Topic", "A topic asked about.", [
            F("name", "string", "The topic name."),
            F("partitionIndexes", "[int32]", "The partition indexes."),
        ])),
    ], response="OffsetFetchResponse"),
    message("OffsetFetchResponse", "offsetFetch", """
OffsetFetch response v3.

Layout: `throttle_time_ms int32, topics array[{name string, partitions array[{partition_index int32,
committed_offset int64, metadata nullable string, error_code int16}]}], error_code int16` (top-level
error last).""", [
        THROTTLE,
        F("topics", "[T]", "One entry per topic.", S("Topic", "A topic's offsets.", [
            F("name", "string", "The topic name."),
            F("partitions", "[T]", "One entry per partition.", S("Partition", "A partition's offset.", [
                F("partitionIndex", "int32", "The partition index."),
                F("committedOffset", "int64", "The committed offset (-1 = none)."),
                F("metadata", "string?", "Client metadata, or nil."),
                ERROR,
            ])),
        ])),
        ERROR,
    ]),
    message("DescribeGroupsRequest", "describeGroups", """
DescribeGroups request v3 (key 15).

Layout: `groups array[string], include_authorized_operations bool`.""", [
        F("groups", "[string]", "The group ids."),
        F("includeAuthorizedOperations", "bool", "Whether to compute authorized operations."),
    ], response="DescribeGroupsResponse"),
    message("DescribeGroupsResponse", "describeGroups", """
DescribeGroups response v3.

Layout: `throttle_time_ms int32, groups array[{error_code int16, group_id string, group_state string,
protocol_type string, protocol_data string, members array[{member_id string, client_id string,
client_host string, member_metadata bytes, member_assignment bytes}], authorized_operations int32}]`.""", [
        THROTTLE,
        F("groups", "[T]", "One entry per group.", S("Group", "A group's description.", [
            ERROR,
            F("groupId", "string", "The group id."),
            F("groupState", "string", "Empty, PreparingRebalance, CompletingRebalance, Stable or Dead."),
            F("protocolType", "string", "The protocol type."),
            F("protocolData", "string", "The chosen protocol (assignor)."),
            F("members", "[T]", "The members.", S("Member", "A member's description.", [
                F("memberId", "string", "The member id."),
                F("clientId", "string", "The member's client id."),
                F("clientHost", "string", "The member's host."),
                F("memberMetadata", "bytes", "The member's protocol metadata."),
                F("memberAssignment", "bytes", "The member's assignment."),
            ])),
            F("authorizedOperations", "int32", "Authorized operations bit field (Int32.min = not computed)."),
        ])),
    ]),
    message("ListGroupsRequest", "listGroups", """
ListGroups request v2 (key 16). The body is empty.""", [], response="ListGroupsResponse"),
    message("ListGroupsResponse", "listGroups", """
ListGroups response v2.

Layout: `throttle_time_ms int32, error_code int16, groups array[{group_id string, protocol_type string}]`.""", [
        THROTTLE,
        ERROR,
        F("groups", "[T]", "One entry per group.", S("Group", "A group.", [
            F("groupId", "string", "The group id."),
            F("protocolType", "string", "The protocol type."),
        ])),
    ]),
    message("DeleteGroupsRequest", "deleteGroups", """
DeleteGroups request v1 (key 42). v1 has v0's layout (v1 only changed throttling on quota).

Layout: `groups_names array[string]`.""", [
        F("groupsNames", "[string]", "The group ids to delete."),
    ], response="DeleteGroupsResponse"),
    message("DeleteGroupsResponse", "deleteGroups", """
DeleteGroups response v1.

Layout: `throttle_time_ms int32, results array[{group_id string, error_code int16}]`. Per group:
NONE, NON_EMPTY_GROUP (68) while it has members, GROUP_ID_NOT_FOUND (69), NOT_COORDINATOR (16), ...""", [
        THROTTLE,
        F("results", "[T]", "One entry per group asked about.", S("GroupResult", "The outcome for one group.", [
            F("groupId", "string", "The group id."),
            ERROR,
        ])),
    ]),
]


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out_dir = os.path.join(root, "Sources", "KafkaProtocol", "Messages")
    os.makedirs(out_dir, exist_ok=True)
    for name, messages in FILES.items():
        lines = [
            "// Generated by tools/gen_protocol.py from its schema table: edit the table, not this file.",
            "",
            "import NIOCore",
        ]
        for m in messages:
            lines.append("")
            lines.extend(m)
        text = "\n".join(lines) + "\n"
        for i, line in enumerate(text.split("\n")):
            if len(line) > 120:
                raise SystemExit(f"{name}.swift:{i + 1}: line over 120 columns")
        with open(os.path.join(out_dir, f"{name}.swift"), "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
