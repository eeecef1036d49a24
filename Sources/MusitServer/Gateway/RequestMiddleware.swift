import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import MusitAPI

/// What every request goes through, in one middleware: the log line, the metrics and the
/// problem answer for an error.
///
/// One middleware, not three: a held long-poll keeps every middleware's async frame alive
/// for as long as it is held, and each frame costs about a kilobyte of task memory. The
/// order is the one three would have: the request is logged as it starts, an error becomes
/// its `application/problem+json` answer, and the metrics count the answer that leaves.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = MusitContext
    let problems: ProblemMiddleware<MusitContext>
    let routes: RouteCounter
    let table: RouteTable
    let cors: CORSPolicy
    let metrics = RequestMetrics()

    init(logger: Logger, routes: RouteCounter, table: RouteTable, cors: CORSPolicy) {
        problems = ProblemMiddleware(logger: logger)
        self.routes = routes
        self.table = table
        self.cors = cors
    }

    func handle(_ request: Request, context: MusitContext, next: (Request, MusitContext) async throws -> Response) async throws -> Response {
        let method: HTTPRequest.Method = context.isHead ? .head : request.method
        context.logger.info("Request", metadata: [
            "hb.request.method": .string(method.rawValue),
            "hb.request.path": .string(Self.redacted(request.uri)),
        ])
        let start = DispatchTime.now().uptimeNanoseconds
        let active = metrics.active(method)
        active.increment()
        defer { active.decrement() }
        var response: Response
        do {
            response = try await answer(request, context: context, next: next)
        } catch {
            response = problems.response(for: error, request: request)
        }
        if let origin = request.headers[.origin], cors.isEnabled, cors.allows(origin) {
            response.headers[.accessControlAllowOrigin] = origin
            response.headers[.accessControlExposeHeaders] = CORSPolicy.exposedHeaders
            response.headers[values: .vary].append("Origin")
        }
        let endpoint = metrics.endpoint(context.endpointPath, method, response.status)
        endpoint.requests.increment()
        endpoint.errors?.increment()
        endpoint.duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        routes.add(endpoint.route)
        return response
    }

    /// The route's answer, or 405/OPTIONS for a path the router has under other methods,
    /// with GET's preconditions evaluated on the answer.
    private func answer(_ request: Request, context: MusitContext,
                        next: (Request, MusitContext) async throws -> Response) async throws -> Response {
        // A request the router matched has its route and method (the router sets the
        // endpoint path first), so the table is read only for the rest: no route took it,
        // or OPTIONS, which no route registers.
        let routed = context.endpointPath != nil && request.method != .options
        let methods = routed ? [] : table.methods(for: request.uri.path)
        if !methods.isEmpty, !methods.contains(request.method) || request.method == .options {
            let allow = methods.map(\.rawValue).joined(separator: ", ")
            guard request.method == .options else {
                throw HTTPError(.methodNotAllowed, headers: [.allow: allow],
                                message: "\(request.method.rawValue) is not allowed here; this resource takes \(allow)")
            }
            var headers: HTTPFields = [.allow: allow]
            if let origin = request.headers[.origin], cors.isEnabled, cors.allows(origin),
               request.headers[.accessControlRequestMethod] != nil {
                let asked = (request.headers[.accessControlRequestHeaders] ?? "").split(separator: ",")
                    .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
                headers[.accessControlAllowMethods] = allow
                headers[.accessControlAllowHeaders] = asked.filter { CORSPolicy.allowedHeaders.contains($0) }.joined(separator: ", ")
                headers[.accessControlMaxAge] = "600"
            }
            return Response(status: .noContent, headers: headers)
        }
        let response = try await next(request, context)
        return request.method == .get ? Preconditions.apply(to: response, request: request) : response
    }

    /// Query parameters that carry secrets; their values never reach a log.
    static let secretParameters: Set<Substring> = ["token", "access_token", "refresh_token", "accessToken", "refreshToken"]

    /// The target with the values of secret query parameters replaced.
    static func redacted(_ uri: URI) -> String {
        guard let query = uri.query, !query.isEmpty else { return uri.path }
        let parts = query.split(separator: "&", omittingEmptySubsequences: false).map { part -> String in
            let name = part.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            return secretParameters.contains(name) ? "\(name)=REDACTED" : String(part)
        }
        return uri.path + "?" + parts.joined(separator: "&")
    }
}
