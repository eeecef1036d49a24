import Foundation
import Hummingbird
import HTTPTypes
import MusitAPI
import NIOConcurrencyHelpers

/// The routes the router has, by path pattern, so a request for a path that exists under
/// other methods gets 405 with `Allow` (RFC 9110 §15.5.6) instead of 404, and OPTIONS and
/// CORS preflights can say what a path takes. Filled once, after every controller has
/// registered its routes.
final class RouteTable: Sendable {
    private let routes = NIOLockedValueBox<[(path: RouterPath, method: HTTPRequest.Method)]>([])

    func load(_ described: [Router<MusitContext>.RouteDescription]) {
        routes.withLockedValue { $0 = described.map { ($0.path, $0.method) } }
    }

    /// Every route as (path pattern with `{name}` captures, method), for the contract test.
    var all: [(path: String, method: String)] {
        routes.withLockedValue { routes in
            routes.map { route in
                let path = "/" + route.path.components.map(\.description).joined(separator: "/")
                return (path, route.method.rawValue)
            }
        }
    }

    /// Every method some route takes at `path`; HEAD wherever GET is, OPTIONS everywhere a
    /// route is. Empty when no route has this path.
    func methods(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        // The router prefers a literal segment to a capture (`friends/requests` over
        // `friends/:username`): only the most specific matching pattern counts.
        var best: (rank: [Int], path: String)?
        var found = Set<String>()
        routes.withLockedValue { routes in
            for route in routes where Self.matches(route.path, segments) {
                let rank = zip(route.path.components, segments).map { $0 == RouterPath.Element.path($1) ? 1 : 0 }
                let key = route.path.description
                if best == nil || best!.rank.lexicographicallyPrecedes(rank) {
                    best = (rank, key)
                    found = []
                }
                if best?.path == key { found.insert(route.method.rawValue) }
            }
        }
        guard !found.isEmpty else { return [] }
        if found.contains("GET") { found.insert("HEAD") }
        found.insert("OPTIONS")
        return found.sorted().compactMap { HTTPRequest.Method($0) }
    }

    private static func matches(_ pattern: RouterPath, _ segments: [Substring]) -> Bool {
        var i = 0
        for element in pattern.components {
            if element == RouterPath.Element.recursiveWildcard { return i < segments.count }
            guard i < segments.count, element ~= segments[i] else { return false }
            i += 1
        }
        return i == segments.count
    }
}

/// Hummingbird registers no HEAD routes: this responder answers HEAD wherever GET is, with
/// GET's status and headers (its length, its Content-Range) and no body (RFC 9110 §9.3.2).
/// Everything else goes to the router as it came.
public struct MusitResponder: HTTPResponder {
    public typealias Context = MusitContext
    let router: RouterResponder<MusitContext>
    /// What the router holds, for 405s and the contract test.
    let routes: RouteTable

    public func respond(to request: Request, context: MusitContext) async throws -> Response {
        guard request.method == .head else { return try await router.respond(to: request, context: context) }
        var head = request.head
        head.method = .get
        let get = Request(head: head, body: request.body)
        var context = context
        context.isHead = true
        var response = try await router.respond(to: get, context: context)
        if let send = response.headers[FileSends.header] {
            // A file the connection would have sent: its length stays, the file is let go.
            _ = FileSends.take(send)
            response.headers[FileSends.header] = nil
            return response
        }
        let length = response.body.contentLength
        response.body = ResponseBody()
        response.headers[.contentLength] = length.map(String.init)
        return response
    }
}

/// Which other origins may call the API and stream media from a browser (CORS). Off by
/// default: no origin is allowed until one is configured.
public struct CORSPolicy: Sendable, Equatable {
    /// Exact origins (`https://player.example`), or `*` for any.
    public var allowedOrigins: [String] = []

    public init(allowedOrigins: [String] = []) {
        self.allowedOrigins = allowedOrigins
    }

    var isEnabled: Bool { !allowedOrigins.isEmpty }

    func allows(_ origin: String) -> Bool {
        allowedOrigins.contains("*") || allowedOrigins.contains(origin)
    }

    /// Request headers a cross-origin caller may send.
    static let allowedHeaders: Set<String> = [
        "authorization", "content-type", "range", "if-match", "if-none-match", "if-modified-since",
        "if-unmodified-since", "if-range", "idempotency-key", "accept", "accept-language", "content-language",
    ]
    /// Response headers a cross-origin caller may read.
    static let exposedHeaders = "Content-Range, Accept-Ranges, Content-Length, ETag, Last-Modified, Location, Retry-After, WWW-Authenticate"
}

/// The conditional requests of RFC 9110 §13 for GET and HEAD, evaluated on the answer the
/// route produced, in the order of §13.2.2: If-Match, else If-Unmodified-Since (412); then
/// If-None-Match, else If-Modified-Since (304). Answers without a validator pass unchanged.
enum Preconditions {
    static func apply(to response: Response, request: Request) -> Response {
        guard response.status == .ok || response.status == .partialContent else { return response }
        // Most requests carry no condition: then the answer's own validators need no reading
        // (parsing its date through Foundation's calendar cost a media GET about a tenth).
        let fields = request.headers
        guard fields[.ifMatch] != nil || fields[.ifUnmodifiedSince] != nil || fields[.ifNoneMatch] != nil
            || fields[.ifModifiedSince] != nil else { return response }
        let etag = response.headers[.eTag]
        let lastModified = response.headers[.lastModified].flatMap(parseHTTPDate)
        if let ifMatch = request.headers[.ifMatch] {
            if !strongMatch(ifMatch, etag) { return failed(response) }
        } else if let since = request.headers[.ifUnmodifiedSince].flatMap(parseHTTPDate), let lastModified, lastModified > since {
            return failed(response)
        }
        if let ifNoneMatch = request.headers[.ifNoneMatch] {
            if weakMatch(ifNoneMatch, etag) { return notModified(response) }
        } else if let since = request.headers[.ifModifiedSince].flatMap(parseHTTPDate), let lastModified, lastModified <= since {
            return notModified(response)
        }
        return response
    }

    /// The entity tags of a list header; `*` stands alone.
    static func tags(_ header: String) -> [Substring] {
        header.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces)[...] }.map { Substring($0) }
    }

    /// If-Match uses strong comparison: a weak tag never matches (§8.8.3.2).
    static func strongMatch(_ header: String, _ etag: String?) -> Bool {
        guard let etag else { return false }
        return tags(header).contains { $0 == "*" || (!$0.hasPrefix("W/") && !etag.hasPrefix("W/") && $0 == etag) }
    }

    /// If-None-Match uses weak comparison: `W/"x"` matches `"x"` (§13.1.2).
    static func weakMatch(_ header: String, _ etag: String?) -> Bool {
        guard let etag else { return false }
        func opaque(_ tag: Substring) -> Substring { tag.hasPrefix("W/") ? tag.dropFirst(2) : tag }
        return tags(header).contains { $0 == "*" || opaque($0) == opaque(Substring(etag)) }
    }

    private static func notModified(_ response: Response) -> Response {
        var headers = HTTPFields()
        for name in [HTTPField.Name.eTag, .lastModified, .cacheControl, .contentLocation, .vary, .expires] {
            if let value = response.headers[name] { headers[name] = value }
        }
        return Response(status: .notModified, headers: headers)
    }

    private static func failed(_ response: Response) -> Response {
        var r = ProblemMiddleware<MusitContext>.response(Problem(status: 412, title: "Precondition Failed",
                                                                 detail: "The resource does not match the request's If-Match or If-Unmodified-Since"))
        if let etag = response.headers[.eTag] { r.headers[.eTag] = etag }
        return r
    }

    /// IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must accept
    /// (RFC 9110 §5.6.7). Nil for anything else, which makes the condition ignored.
    static func parseHTTPDate(_ text: String) -> Date? {
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let words = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "-" }).map(String.init)
        var day: Int?, month: Int?, year: Int?, clock: [Int] = []
        switch words.count {
        case 6 where words[5] == "GMT":  // Sun, 06 Nov 1994 08:49:37 GMT / Sunday, 06-Nov-94 08:49:37 GMT
            day = Int(words[1]); month = months.firstIndex(of: words[2]); year = Int(words[3])
            if let y = year, words[3].count == 2 { year = y < 70 ? 2000 + y : 1900 + y }
            clock = words[4].split(separator: ":").compactMap { Int($0) }
        case 5:  // Sun Nov  6 08:49:37 1994
            month = months.firstIndex(of: words[1]); day = Int(words[2]); year = Int(words[4])
            clock = words[3].split(separator: ":").compactMap { Int($0) }
        default:
            return nil
        }
        guard let day, let month, let year, clock.count == 3, (1...31).contains(day), (1900...9999).contains(year),
              (0...23).contains(clock[0]), (0...59).contains(clock[1]), (0...60).contains(clock[2]) else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm): no calendar, time zone or lock.
        let y = month < 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let m = month + 1
        let dayOfYear = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = days * 86_400 + clock[0] * 3600 + clock[1] * 60 + clock[2]
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }
}
