import Foundation
@testable import MusitServer
import Testing

/// One public contract: api/openapi.yaml is what the server serves, every route the router
/// has is documented with its method, every documented operation has a route, path
/// parameters have the same names, and every call the player's client makes is documented.
@Suite("Gateway: the OpenAPI document is the router's and the client's contract")
struct OpenAPIContractTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// (path, method) of every operation in the document: `  /path:` then `    get:`.
    static func documented(_ yaml: String) -> Set<String> {
        var out = Set<String>()
        var inPaths = false
        var path: String?
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if line == "paths:" { inPaths = true; continue }
            guard inPaths else { continue }
            if !line.hasPrefix(" "), !line.isEmpty { inPaths = false; continue }
            if line.hasPrefix("  /"), line.hasSuffix(":"), !line.hasPrefix("   ") {
                path = String(line.dropFirst(2).dropLast())
            } else if let path, line.hasPrefix("    "), !line.hasPrefix("     "), line.hasSuffix(":") {
                let method = line.trimmingCharacters(in: .whitespaces).dropLast().uppercased()
                if ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"].contains(method) { out.insert("\(method) \(path)") }
            }
        }
        return out
    }

    @Test("the served document is api/openapi.yaml")
    func servedIsTheFile() throws {
        let file = try String(contentsOf: Self.root.appendingPathComponent("api/openapi.yaml"), encoding: .utf8)
        #expect(OpenAPIDocument.yaml + "\n" == file || OpenAPIDocument.yaml == file,
                "api/openapi.yaml changed without scripts/generate-openapi.sh")
    }

    @Test("every route is documented and every documented operation has a route, with the same path parameters")
    func routesMatch() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("musit-openapi-\(UUID().uuidString)").path
        var config = ServerConfiguration(dataDirectory: dir)
        config.bcryptCost = 4
        let app = try await MusitBackend.makeApplication(config)
        let routes = Set(app.responder.routes.all.map { "\($0.method) \($0.path)" })
        let documented = Self.documented(OpenAPIDocument.yaml)
        #expect(documented.count > 25)
        let undocumented = routes.subtracting(documented).sorted()
        let unrouted = documented.subtracting(routes).sorted()
        #expect(undocumented.isEmpty, "routes missing from api/openapi.yaml: \(undocumented)")
        #expect(unrouted.isEmpty, "documented operations without a route: \(unrouted)")
    }

    @Test("every call the client makes is a documented operation")
    func clientCallsAreDocumented() throws {
        let documented = Self.documented(OpenAPIDocument.yaml)
        // `call(.GET, "/api/v1/users/\(Self.segment(username))")` and `baseURL + "/api/v1/…"`.
        let pattern = /call\(\.(GET|POST|PUT|PATCH|DELETE), "(\/api\/v1\/[^"?]*)/
        let direct = /HTTPClientRequest\(url: baseURL \+ "(\/api\/v1\/[^"?]*)"\)/
        var calls: [(method: String, path: String)] = []
        for name in ["APIClient.swift", "Endpoints.swift", "Streams.swift", "Sync.swift"] {
            let url = Self.root.appendingPathComponent("Sources/MusitClient/\(name)")
            guard let text = try? String(contentsOf: url, encoding: .utf8) else { continue }
            for m in text.matches(of: pattern) { calls.append((String(m.1), String(m.2))) }
            for m in text.matches(of: direct) { calls.append(("GET", String(m.1))) }
        }
        #expect(calls.count >= 20, "the client's calls were not found (\(calls.count))")
        let templates = documented.map { $0.split(separator: " ", maxSplits: 1).map(String.init) }
        for call in calls {
            // An interpolation stands for one path segment: it matches a `{parameter}`.
            let segments = call.path.split(separator: "/")
            let found = templates.contains { t in
                guard t[0] == call.method || (call.method == "GET" && t[0] == "GET") else { return false }
                let doc = t[1].split(separator: "/")
                return doc.count == segments.count && zip(doc, segments).allSatisfy { d, s in
                    d == s || (d.hasPrefix("{") && (s.contains("\\(") || s.allSatisfy(\.isNumber)))
                }
            }
            #expect(found, "the client calls \(call.method) \(call.path), which api/openapi.yaml does not document")
        }
    }
}
