// KafkaProtocol: the Kafka wire codec Keel speaks to clients.
//
// What this module owns: `int32 size` framing (`KafkaFrameDecoder`), request headers
// v1/v2 and response headers v0/v1, the primitive encodings (`KafkaReader`,
// `KafkaWriter`), one struct per request and response of every API version Keel
// implements, the error codes (`ErrorCode`) and the ApiVersions table
// (`ApiVersionsTable`: what is advertised versus what is implemented, see
// ../shared/PROTOCOL.md §3).
//
// What it must never do: trap or allocate unboundedly on bytes from the network. Every
// length and count is checked against the bytes that remain before anything is
// allocated, and malformed input becomes a typed `KafkaProtocolError`. It never decodes
// record batches: Produce records and Fetch records stay opaque `ByteBuffer` slices (or,
// for Fetch responses, placeholders the server fills with file regions).
//
// Both sides are here: the broker decodes requests (`KafkaRequestDecoder.decode(frame:)`,
// one entry point returning a typed `KafkaRequest`) and encodes responses
// (`KafkaResponseEncoder`); a client encodes requests (`KafkaRequestEncoder`) and
// decodes responses (`KafkaResponseDecoder`).
//
// Main types: `KafkaReader`, `KafkaWriter`, `KafkaProtocolError`, `KafkaFrameDecoder`,
// `RequestHeader`, `ResponseHeader`, `ApiKey`, `ErrorCode`, `ApiVersionsTable`,
// `KafkaMessage` / `KafkaRequestMessage` (implemented by every body struct),
// `KafkaRequest`, `FetchResponse.encodeFrameParts`.

import NIOCore

/// A request or response body that Keel can encode and decode at the versions it implements.
///
/// `decode` reads exactly the body (after the header); `encode` writes exactly the body.
/// The version must be one that `ApiVersionsTable.implementedVersions(of:)` lists for
/// `apiKey`; encoding at another version is a programming error and traps.
public protocol KafkaMessage: Sendable, Equatable {
    /// The API this body belongs to.
    static var apiKey: ApiKey { get }

    /// Writes the body in the layout of `version`.
    func encode(into writer: inout KafkaWriter, version: Int16)

    /// Reads a body in the layout of `version`, throwing on malformed or truncated input.
    static func decode(from reader: inout KafkaReader, version: Int16) throws(KafkaProtocolError) -> Self
}

/// A request body; `Response` is the body type the broker answers with.
public protocol KafkaRequestMessage: KafkaMessage {
    /// The response body type of this API.
    associatedtype Response: KafkaMessage
}

extension KafkaMessage {
    /// Traps unless `version` is implemented for this API: encoding another layout is a caller bug.
    static func checkEncodable(_ version: Int16) {
        precondition(
            ApiVersionsTable.isImplemented(apiKey, version: version),
            "\(apiKey) v\(version) is not implemented"
        )
    }
}
