import ArgumentParser

@main
struct Keel: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel",
        abstract: "Keel: a distributed replicated log that speaks the Kafka protocol."
    )
}
