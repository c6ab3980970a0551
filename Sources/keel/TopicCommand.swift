// `keel topic create|list|describe|delete`: topic administration through KeelClient.
import ArgumentParser
import KafkaProtocol
import KeelClient

/// `keel topic …`.
struct TopicCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topic",
        abstract: "Create, list, describe and delete topics.",
        subcommands: [TopicCreate.self, TopicList.self, TopicDescribe.self, TopicDelete.self]
    )
}

struct TopicCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a topic.")

    @OptionGroup var options: ClientOptions

    @Argument(help: "The topic name.")
    var name: String

    @Option(name: .long, help: "Number of partitions.")
    var partitions: Int32 = 1

    @Option(name: .long, help: "Replicas per partition (default: the cluster's default.replication.factor).")
    var replicationFactor: Int16?

    @Option(
        name: .customLong("config"), help: "A topic configuration, key=value (repeatable), e.g. retention.ms=60000.")
    var configs: [String] = []

    func run() async throws {
        guard partitions >= 1 else { throw CommandError("--partitions must be at least 1") }
        if let replicationFactor, replicationFactor < 1 {
            throw CommandError("--replication-factor must be at least 1")
        }
        let entries = try parseKeyValues(configs, option: "--config")
        var configMap: [String: String] = [:]
        for (key, value) in entries { configMap[key] = value }
        let client = try options.makeClient()
        do {
            try await client.createTopic(
                name, partitions: partitions, replicationFactor: replicationFactor ?? -1, configs: configMap)
        } catch {
            throw options.explain(error, topic: name)
        }
        await client.close()
        print("created topic '\(name)' with \(partitions) partition\(partitions == 1 ? "" : "s")")
    }
}

struct TopicList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List the topics.")

    @OptionGroup var options: ClientOptions

    func run() async throws {
        let client = try options.makeClient()
        let topics: [TopicInfo]
        do {
            topics = try await client.listTopics()
        } catch {
            throw options.explain(error)
        }
        await client.close()
        for topic in topics {
            print("\(topic.name)\t\(topic.partitions.count) partition\(topic.partitions.count == 1 ? "" : "s")")
        }
    }
}

struct TopicDescribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "describe", abstract: "Show a topic's partitions, leaders, replicas and configuration.")

    @OptionGroup var options: ClientOptions

    @Argument(help: "The topic name.")
    var name: String

    func run() async throws {
        let client = try options.makeClient()
        let info: TopicInfo
        do {
            info = try await client.describeTopic(name)
        } catch {
            throw options.explain(error, topic: name)
        }
        let replication = info.partitions.first?.replicas.count ?? 0
        print("topic \(info.name)  partitions \(info.partitions.count)  replication factor \(replication)")
        for partition in info.partitions {
            let leader = partition.leader >= 0 ? "\(partition.leader)" : "none"
            let replicas = partition.replicas.map(String.init).joined(separator: ",")
            let isr = partition.isr.map(String.init).joined(separator: ",")
            var line = "  partition \(partition.partition)  leader \(leader)  replicas [\(replicas)]  isr [\(isr)]"
            if let earliest = try? await client.listOffsets(topic: name, partition: partition.partition, .earliest),
                let latest = try? await client.listOffsets(topic: name, partition: partition.partition, .latest)
            {
                line += "  offsets \(earliest)..<\(latest)"
            }
            if partition.error != .none { line += "  error \(partition.error)" }
            print(line)
        }
        do {
            let configs = try await client.describeConfigs(topic: name)
            print("configs")
            for entry in configs {
                print("  \(entry.name)=\(entry.value ?? "(hidden)")\(entry.isDefault ? "" : "  (set on topic)")")
            }
        } catch {
            print("configs unavailable: \(error)")
        }
        await client.close()
    }
}

struct TopicDelete: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete a topic and its records.")

    @OptionGroup var options: ClientOptions

    @Argument(help: "The topic name.")
    var name: String

    func run() async throws {
        let client = try options.makeClient()
        do {
            try await client.deleteTopic(name)
        } catch {
            throw options.explain(error, topic: name)
        }
        await client.close()
        print("deleted topic '\(name)'")
    }
}
