import Foundation
import GRPCCore
import Hummingbird
import MusitRPC
import NIOCore
import SwiftProtobuf

/// A service's methods as JSON over HTTP/1.1 on its HTTP port, in the shape of the Connect
/// protocol's unary calls: `POST /rpc/<package.Service>/<Method>` with the request message
/// as protobuf JSON, the answer the same way; an error is `{"code", "message"}` with the
/// HTTP status that matches its gRPC code. For curl, for callers without HTTP/2, and for
/// `bench/rpc.sh`, which measures the same call both ways. The handlers are the gRPC ones.
struct JSONCalls: Sendable {
    typealias Call = @Sendable (ByteBuffer) async throws -> ByteBuffer

    let methods: [String: Call]

    /// Messages larger than this are refused, as over gRPC (`ServiceRole.maxRequestBytes`).
    static let maxRequestBytes = ServiceRole.maxRequestBytes

    func addRoutes(to router: Router<BasicRequestContext>) {
        let methods = self.methods
        router.post("/rpc/:service/:method") { request, context -> Response in
            let service = context.parameters.get("service") ?? ""
            let method = context.parameters.get("method") ?? ""
            guard let call = methods["\(service)/\(method)"] else {
                return Self.error(.unimplemented, "No method \(service)/\(method) here")
            }
            let body = try await request.body.collect(upTo: Self.maxRequestBytes)
            do {
                let answer = try await call(body)
                return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: answer))
            } catch let error as RPCError {
                return Self.error(error.code, error.message)
            } catch is SwiftProtobuf.JSONDecodingError {
                return Self.error(.invalidArgument, "The body is not this method's request message as JSON")
            }
        }
    }

    static func error(_ code: RPCError.Code, _ message: String) -> Response {
        // Over the shared table: a method this service lacks is 404 here, and the service
        // failing is its own 500 (a gateway's callee failing is 502 there).
        let status: HTTPResponse.Status = switch code {
        case .outOfRange: .badRequest
        case .unauthenticated: .unauthorized
        case .unimplemented: .notFound
        default: code.httpStatus ?? .internalServerError
        }
        let names = RPCMetrics.codeNames
        let name = names.indices.contains(code.rawValue) ? names[code.rawValue] : "Unknown"
        let body = (try? JSONSerialization.data(withJSONObject: ["code": name, "message": message], options: [.sortedKeys])) ?? Data()
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }

    /// One unary handler as a JSON call.
    static func unary<Request: SwiftProtobuf.Message, Answer: SwiftProtobuf.Message>(
        _ name: String, _ handler: @escaping @Sendable (Request, ServerContext) async throws -> Answer
    ) -> (String, Call) {
        let parts = name.split(separator: "/")
        let descriptor = MethodDescriptor(fullyQualifiedService: String(parts[0]), method: String(parts[1]))
        return (name, { body in
            let request = try Request(jsonUTF8Bytes: Array(body.readableBytesView))
            let context = ServerContext(descriptor: descriptor, remotePeer: "json", localPeer: "json", cancellation: .init())
            let answer = try await handler(request, context)
            let json: [UInt8] = try answer.jsonUTF8Bytes()
            return ByteBuffer(bytes: json)
        })
    }

    static func methods(of service: any RegistrableRPCService) -> [String: Call] {
        var out: [String: Call] = [:]
        if let stats = service as? StatsService {
            for (name, call) in [unary("musit.stats.v1.Stats/RecordPlay", stats.recordPlay(request:context:)),
                                 unary("musit.stats.v1.Stats/Overview", stats.overview(request:context:)),
                                 unary("musit.stats.v1.Stats/Forget", stats.forget(request:context:))] {
                out[name] = call
            }
        }
        if let health = service as? HealthService {
            let (name, call) = unary("grpc.health.v1.Health/Check", health.check(request:context:))
            out[name] = call
        }
        return out
    }
}
