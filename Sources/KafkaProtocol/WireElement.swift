/// A struct with one fixed wire layout, used as an array element or a whole body.
///
/// Swift 6.3 infers `throws(any Error)` for an unannotated closure, so arrays of structs are
/// read through this protocol instead of closures.
protocol WireElement {
    /// The fewest bytes one encoding can occupy (used to bound array counts).
    static var minWireBytes: Int { get }
    /// Reads one value.
    static func read(from reader: inout KafkaReader) throws(KafkaProtocolError) -> Self
    /// Writes one value.
    func write(to writer: inout KafkaWriter)
}

extension KafkaReader {
    /// Reads a non-nullable `array` of `T`.
    mutating func readArray<T: WireElement>(of type: T.Type) throws(KafkaProtocolError) -> [T] {
        guard let array = try readNullableArray(of: type) else { throw .unexpectedNull }
        return array
    }

    /// Reads a nullable `array` of `T`.
    mutating func readNullableArray<T: WireElement>(of type: T.Type) throws(KafkaProtocolError) -> [T]? {
        let count = try readInt32()
        if count == -1 { return nil }
        guard count >= 0 else { throw .invalidLength(Int(count)) }
        try checkCount(Int(count), minElementBytes: T.minWireBytes)
        var result: [T] = []
        result.reserveCapacity(Int(count))
        for _ in 0..<Int(count) {
            result.append(try T.read(from: &self))
        }
        return result
    }
}

extension KafkaWriter {
    /// Writes a non-nullable `array` of `T`.
    mutating func writeArray<T: WireElement>(_ elements: [T]) {
        writeInt32(Int32(elements.count))
        for element in elements { element.write(to: &self) }
    }

    /// Writes a nullable `array` of `T`.
    mutating func writeNullableArray<T: WireElement>(_ elements: [T]?) {
        guard let elements else { return writeInt32(-1) }
        writeArray(elements)
    }
}
