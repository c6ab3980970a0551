import Broker
import Foundation
import NIOCore
import Raft

/// Writes `<data-dir>/status.json` about once a second: this node's view of the cluster and every replica it holds
/// (role, term, offsets, and on a leader each follower's end offset, hence its lag). `cluster/status` reads these
/// files. Replaced atomically (rename), never fsynced: it is a report, not state.
///
/// ```
/// {"node": 1, "time_ms": ..., "controller": 2, "caught_up": true,
///  "replicas": [{"topic": "t", "partition": 0, "leader": 1, "term": 3, "is_leader": true, "high_watermark": 10,
///                "log_start": 0, "log_end": 10, "followers": {"2": 10, "3": 7}, "failure": null}, ...]}
/// ```
final class StatusFile: Sendable {
    let path: String
    let broker: Broker
    let nodeId: Int32

    init(directory: String, broker: Broker, nodeId: Int32) {
        self.path = directory + "/status.json"
        self.broker = broker
        self.nodeId = nodeId
    }

    /// Writes the file every `intervalMs` on `loop` until the returned task is cancelled.
    func start(on loop: any EventLoop, intervalMs: Int64 = 1000) -> RepeatedTask {
        loop.scheduleRepeatedAsyncTask(initialDelay: .zero, delay: .milliseconds(intervalMs)) { _ in
            self.broker.replicaStatuses(on: loop).map { statuses in
                self.write(statuses)
            }
        }
    }

    func write(_ statuses: [ReplicaStatus]) {
        var replicas: [[String: Any]] = []
        for status in statuses {
            var followers: [String: Int64] = [:]
            for (node, end) in status.followerEndOffsets ?? [:] { followers[String(node.value)] = end.value }
            replicas.append([
                "topic": status.group.topic, "partition": status.group.partition,
                "leader": status.leader.map { Int64($0.value) } ?? -1, "term": Int64(status.term.value),
                "is_leader": status.isLeader, "voters": status.voters.map { Int64($0.value) },
                "high_watermark": status.highWatermark.value, "log_start": status.logStartOffset.value,
                "log_end": status.logEndOffset.value, "followers": followers,
                "failure": status.failure ?? NSNull(),
            ])
        }
        let report: [String: Any] = [
            "node": Int64(nodeId), "time_ms": Int64(Date().timeIntervalSince1970 * 1000),
            "controller": broker.knownControllerId.map { Int64($0) } ?? -1, "caught_up": broker.isCaughtUp,
            "replicas": replicas,
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: report, options: [.sortedKeys]) else { return }
        let temp = path + ".tmp"
        guard FileManager.default.createFile(atPath: temp, contents: data) else { return }
        _ = rename(temp, path)
    }
}
