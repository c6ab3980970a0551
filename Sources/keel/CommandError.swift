/// A mistake on the command line or in its input: printed as one line ("Error: …") that
/// says what to do, with no usage dump.
struct CommandError: Error, CustomStringConvertible {
    /// The one line to print.
    var description: String

    init(_ description: String) { self.description = description }
}
