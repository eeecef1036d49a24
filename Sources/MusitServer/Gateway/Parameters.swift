import Foundation
import Hummingbird
import MusitAPI

/// The query parameters of a request, parsed and checked in one place: a value that is
/// present must parse and lie in its range, or the request is refused with a 400 naming the
/// parameter. Absent parameters take their default; nothing is read silently as 0.
struct QueryParameters {
    let parameters: Parameters

    init(_ request: Request) {
        parameters = request.uri.queryParameters
    }

    /// An integer in `range`, or `default` when absent.
    func integer<I: FixedWidthInteger & Sendable>(_ name: String, in range: ClosedRange<I>, default value: I) throws -> I {
        try optionalInteger(name, in: range) ?? value
    }

    /// An integer in `range`, or nil when absent.
    func optionalInteger<I: FixedWidthInteger & Sendable>(_ name: String, in range: ClosedRange<I>) throws -> I? {
        let all = parameters.getAll(name)
        guard let raw = all.first else { return nil }
        guard all.count == 1 else { throw Problem.badParameter(name, "is given more than once") }
        // Digits only (an optional minus): no "+5", " 5", "0x10" or "5e3".
        let body = raw.hasPrefix("-") ? raw.dropFirst() : Substring(raw)
        guard !body.isEmpty, body.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw Problem.badParameter(name, "must be a whole number, not \"\(raw.prefix(32))\"")
        }
        guard let value = I(raw), range.contains(value) else {
            throw Problem.badParameter(name, "must be \(range.lowerBound) to \(range.upperBound)")
        }
        return value
    }

    /// Text of at most `maxCharacters` characters and `maxBytes` bytes of UTF-8, or nil when absent.
    func text(_ name: String, maxCharacters: Int, maxBytes: Int) throws -> String? {
        let all = parameters.getAll(name)
        guard let value = all.first else { return nil }
        guard all.count == 1 else { throw Problem.badParameter(name, "is given more than once") }
        guard value.utf8.count <= maxBytes, value.count <= maxCharacters else {
            throw Problem.badParameter(name, "is at most \(maxCharacters) characters (\(maxBytes) bytes)")
        }
        guard !value.unicodeScalars.contains("\0") else { throw Problem.badParameter(name, "must not contain NUL") }
        return value
    }
}

extension Problem {
    static func badParameter(_ name: String, _ why: String) -> Problem {
        Problem(status: 400, title: "Bad Request", detail: "Query parameter \(name) \(why)")
    }
}
