// The `keel` command: one binary for the broker, the tools and the benchmarks.
import ArgumentParser

@main
struct Keel: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel",
        abstract: "Keel: a distributed replicated log that speaks the Kafka protocol.",
        subcommands: [
            BrokerCommand.self, TopicCommand.self, ProduceCommand.self, ConsumeCommand.self, GroupCommand.self,
            LogCommand.self, BenchCommand.self,
        ]
    )
}

/// `keel log …`: tools that work on partition directories directly, with no broker.
struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Work on partition log directories on disk.",
        subcommands: [LogInspect.self]
    )
}
