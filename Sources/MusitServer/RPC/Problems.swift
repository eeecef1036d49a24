import GRPCCore
import Hummingbird
import MusitAPI

/// The public API's failures across a service call: the callee throws what the public
/// API answers (`Problem`, `HTTPError`), the call carries it as a gRPC status with the same
/// message and the HTTP status in the trailing metadata (`musit-http-status`), and
/// `ServiceLink` gives the gateway's client that answer again, whichever side ran it.
enum RPCProblems {
    static let statusKey = "musit-http-status"

    static func mapped<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch let problem as Problem {
            var metadata = Metadata()
            metadata.addString(String(problem.status), forKey: statusKey)
            throw RPCError(code: code(problem.status), message: problem.detail ?? problem.title, metadata: metadata)
        } catch let error as HTTPError {
            var metadata = Metadata()
            metadata.addString(String(error.status.code), forKey: statusKey)
            // A throttle's wait travels as `retry-after` (seconds).
            if let wait = error.headers[.retryAfter] { metadata.addString(wait, forKey: "retry-after") }
            throw RPCError(code: code(Int(error.status.code)), message: error.body ?? error.status.reasonPhrase, metadata: metadata)
        }
    }

    static func code(_ status: Int) -> RPCError.Code {
        switch status {
        case 400, 415, 422: .invalidArgument
        case 401: .unauthenticated
        case 403: .permissionDenied
        case 404: .notFound
        case 409: .alreadyExists
        case 413, 429: .resourceExhausted
        case 503: .unavailable
        default: .internalError
        }
    }

    /// The public API's status a failed call stands for, when the callee said and it is
    /// the client's (4xx) and agrees with the code's meaning; nil otherwise.
    static func status(of error: RPCError) -> HTTPResponse.Status? {
        guard let text = error.metadata[stringValues: statusKey].first(where: { _ in true }), let code = Int(text),
              (400..<500).contains(code), error.code.httpStatus != nil, Self.code(code) == error.code else { return nil }
        return switch code {
        case 400: .badRequest
        case 401: .unauthorized
        case 403: .forbidden
        case 404: .notFound
        case 409: .conflict
        case 413: .contentTooLarge
        case 415: .unsupportedMediaType
        case 422: .unprocessableContent
        case 429: .tooManyRequests
        default: nil
        }
    }
}
