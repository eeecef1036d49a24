import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Metrics
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
    let metrics = RequestMetrics()

    init(logger: Logger, routes: RouteCounter) {
        problems = ProblemMiddleware(logger: logger)
        self.routes = routes
    }

    func handle(_ request: Request, context: MusitContext, next: (Request, MusitContext) async throws -> Response) async throws -> Response {
        context.logger.info("Request", metadata: [
            "hb.request.method": .string(request.method.rawValue),
            "hb.request.path": .string(Self.redacted(request.uri)),
        ])
        let start = DispatchTime.now().uptimeNanoseconds
        let active = metrics.active(request.method)
        active.increment()
        defer { active.decrement() }
        let response: Response
        do {
            response = try await next(request, context)
        } catch {
            response = problems.response(for: error, request: request)
        }
        let endpoint = metrics.endpoint(context.endpointPath, request.method, response.status)
        endpoint.requests.increment()
        endpoint.errors?.increment()
        endpoint.duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - start))
        routes.add(endpoint.route)
        return response
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
