import Foundation
import Hummingbird
import MultipartKit
import MusitAPI
import NIOCore

/// The file of a `multipart/form-data` upload (what `curl -F file=@song.mp3` and an HTML form
/// send), streamed: the bytes of the part named `file` pass through as they arrive, the other
/// parts are skipped, and nothing is held whole. Parsing is MultipartKit's streaming parser.
struct MultipartFile<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element == ByteBuffer {
    typealias Element = ByteBuffer
    static var fieldName: String { "file" }
    /// Room for the form's other parts and the part headers, beyond the file's own limit.
    static var formAllowance: Int { 64 * 1024 }

    let base: Base
    let boundary: String
    /// Bytes the whole body may take: the file's limit and room for the form's other parts.
    let limit: Int

    /// The boundary of a `multipart/form-data` content type; nil for any other type.
    /// Throws when the type is multipart but names no usable boundary.
    static func boundary(of contentType: String) throws -> String? {
        let type = contentType.split(separator: ";").first?.trimmingCharacters(in: .whitespaces)
        guard type?.lowercased() == "multipart/form-data" else { return nil }
        // RFC 2046: 1 to 70 characters.
        guard let boundary = parameter("boundary", in: contentType), (1...70).contains(boundary.count) else {
            throw Problem.badRequest("A multipart/form-data upload needs a boundary of 1 to 70 characters")
        }
        return String(boundary)
    }

    /// The `name` parameter of a Content-Disposition value.
    static func fieldName(of disposition: String) -> String? {
        parameter("name", in: disposition).map(String.init)
    }

    /// The value of parameter `name` (matched without case) in a header value such as
    /// `form-data; name="file"`, without its quotes.
    static func parameter(_ name: String, in value: String) -> Substring? {
        for p in value.split(separator: ";").dropFirst() {
            let kv = p.trimmingCharacters(in: .whitespaces)
            guard kv.lowercased().hasPrefix(name + "=") else { continue }
            var v = kv.dropFirst(name.count + 1)
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = v.dropFirst().dropLast() }
            return v
        }
        return nil
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let parser: MultipartParser
        let state: State
        let limit: Int
        var seen = 0

        /// What the parser's callbacks found; the iterator hands it on.
        final class State {
            var disposition: String?
            /// nil until the current part's headers are known.
            var isFile: Bool?
            var fileDone = false
            /// The file's bytes from one piece of the body, gathered into one buffer. The
            /// parser calls back at every CR (a CR may start the boundary), with the run of
            /// bytes before it and then the CR alone: a piece of 64 KiB of CRs was 65,536
            /// one-byte buffers, each hashed, walked and written to disk on its own, taken
            /// off the front of an array at a cost of the array's length.
            var ready = ByteBuffer()
        }

        mutating func next() async throws -> ByteBuffer? {
            while state.ready.readableBytes == 0 {
                guard let buffer = try await base.next() else {
                    guard state.fileDone else {
                        throw Problem.badRequest("The multipart body ended without a complete part named \"\(MultipartFile.fieldName)\"")
                    }
                    return nil
                }
                seen += buffer.readableBytes
                guard seen <= limit else {
                    throw Problem(status: 413, title: "Content Too Large", detail: "The upload is too large")
                }
                do {
                    try parser.execute(buffer)
                } catch {
                    throw Problem.badRequest("The multipart body is malformed")
                }
            }
            defer { state.ready = ByteBuffer() }
            return state.ready
        }
    }

    func makeAsyncIterator() -> AsyncIterator {
        let parser = MultipartParser(boundary: boundary)
        let state = AsyncIterator.State()
        func decide() {
            if state.isFile == nil {
                state.isFile = !state.fileDone && state.disposition.flatMap(Self.fieldName(of:)) == Self.fieldName
            }
        }
        parser.onHeader = { name, value in
            if name.lowercased() == "content-disposition" { state.disposition = value }
        }
        parser.onBody = { buffer in
            decide()
            guard state.isFile == true, buffer.readableBytes > 0 else { return }
            // The first run is taken as it is (no copy); later ones are appended to it.
            if state.ready.readableBytes == 0 { state.ready = buffer } else { state.ready.writeBuffer(&buffer) }
        }
        parser.onPartComplete = {
            decide()
            if state.isFile == true { state.fileDone = true }
            state.disposition = nil
            state.isFile = nil
        }
        return AsyncIterator(base: base.makeAsyncIterator(), parser: parser, state: state, limit: limit)
    }
}
