// The entry point of `keel`: parses and runs a subcommand like ArgumentParser does, but
// answers a mistake with one line (what is wrong, where to look) instead of a usage dump.
import ArgumentParser
import Foundation

extension Keel {
    /// Runs the command line; `--help` prints help as usual, a mistake prints one line to stderr.
    static func main() async {
        let command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            finish(error, hint: "; see `\(commandPath()) --help`")
        }
        do {
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
        } catch {
            finish(error, hint: "")
        }
    }

    /// `keel` and the subcommand names given on the command line, e.g. `keel topic create`.
    private static func commandPath() -> String {
        var path = ["keel"]
        var current: any ParsableCommand.Type = Keel.self
        for argument in CommandLine.arguments.dropFirst() {
            guard
                let next = current.configuration.subcommands.first(where: {
                    $0.configuration.commandName == argument
                })
            else { break }
            path.append(argument)
            current = next
        }
        return path.joined(separator: " ")
    }

    /// Prints help and clean exits as ArgumentParser does; anything else as `Error: <one line>`.
    private static func finish(_ error: any Error, hint: String) -> Never {
        let code = exitCode(for: error)
        if code == .success { exit(withError: error) }
        let message = message(for: error).split(separator: "\n").first.map(String.init) ?? "\(error)"
        FileHandle.standardError.write(Data("Error: \(message)\(hint)\n".utf8))
        Foundation.exit(code.rawValue)
    }
}
