#!/usr/bin/env python3
"""Answers questions about the consumer protocol with kafka-python 3, whose message classes are
generated from Apache Kafka's JSON schemas and whose assignors are ports of the Java ones.

Usage: kafka_python_check.py < cases.jsonl > answers.jsonl
One JSON object per line in, one per line out, in order:

  {"kind": "subscription", "version": V, "topics": [...], "owned": [[topic, [p...]]...],
   "generation": G, "rack": R or null, "hex": "<bytes Keel wrote>"}
    -> {"hex": "<bytes kafka-python writes for the same fields>",
        "decoded": {"version", "topics", "owned", "generation", "rack", "user_data_hex"}}
  {"kind": "assignment", "partitions": [[topic, [p...]]...], "hex": "..."}
    -> {"hex": "...", "decoded": {"partitions": [[topic, [p...]]...]}}
  {"kind": "assign", "assignor": "range"|"roundrobin", "counts": {topic: n},
   "members": [{"id": ..., "topics": [...]}]}
    -> {"assignment": {member id: [[topic, partition]...] sorted}}
"""
import json
import sys

from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment, ConsumerProtocolSubscription


class Cluster:
    def __init__(self, counts):
        self.counts = counts

    def partitions_for_topic(self, topic):
        count = self.counts.get(topic)
        return None if count is None else set(range(count))


class Member:
    def __init__(self, member_id, topics):
        self.member_id = member_id
        self.group_instance_id = None
        self.metadata = ConsumerProtocolSubscription(topics=topics, user_data=b"", owned_partitions=[], version=0)


def answer(case):
    kind = case["kind"]
    if kind == "subscription":
        version = case["version"]
        fields = {"topics": case["topics"], "user_data": b"", "version": version}
        if version >= 1:
            fields["owned_partitions"] = [
                ConsumerProtocolSubscription.TopicPartition(topic=t, partitions=p) for t, p in case["owned"]]
        if version >= 2:
            fields["generation_id"] = case["generation"]
        if version >= 3:
            fields["rack_id"] = case["rack"]
        ours = ConsumerProtocolSubscription(**fields).encode(version=version).hex()
        decoded = ConsumerProtocolSubscription.decode(bytes.fromhex(case["hex"]))
        return {"hex": ours, "decoded": {
            "version": decoded.version, "topics": list(decoded.topics),
            "owned": [[tp.topic, list(tp.partitions)] for tp in (decoded.owned_partitions or [])],
            "generation": decoded.generation_id, "rack": decoded.rack_id,
            "user_data_hex": None if decoded.user_data is None else bytes(decoded.user_data).hex()}}
    if kind == "assignment":
        partitions = [ConsumerProtocolAssignment.TopicPartition(topic=t, partitions=p) for t, p in case["partitions"]]
        ours = ConsumerProtocolAssignment(assigned_partitions=partitions, user_data=None, version=0).encode(
            version=0).hex()
        decoded = ConsumerProtocolAssignment.decode(bytes.fromhex(case["hex"]))
        return {"hex": ours, "decoded": {
            "partitions": [[tp.topic, list(tp.partitions)] for tp in decoded.assigned_partitions]}}
    if kind == "assign":
        assignor = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}[case["assignor"]]
        members = [Member(m["id"], m["topics"]) for m in case["members"]]
        result = assignor.assign(Cluster(case["counts"]), members)
        return {"assignment": {member_id: sorted([t, p] for t, ps in a.assignment for p in ps)
                               for member_id, a in result.items()}}
    raise ValueError(f"unknown kind {kind}")


def main():
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(answer(json.loads(line))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
