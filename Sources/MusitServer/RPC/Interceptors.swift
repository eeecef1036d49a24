import GRPCCore

/// Fault injection for the deadline tests: `MUSIT_FAULT_DELAY=Method:ms` makes a service
/// role wait that long (cancellably) before it handles each call of that method, as a slow
/// dependency would. Read once at start; off unless set.
struct DelayInterceptor: ServerInterceptor {
    let method: String
    let delay: Duration

    init?(environment value: String?) {
        guard let value, let colon = value.lastIndex(of: ":"), let ms = Int(value[value.index(after: colon)...]), ms > 0 else {
            return nil
        }
        method = String(value[..<colon])
        delay = .milliseconds(ms)
    }

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        if context.descriptor.method == method {
            // Cancelled with the call: past its deadline the server cancels it here.
            try await Task.sleep(for: delay)
        }
        return try await next(request, context)
    }
}

/// Makes a call's deadline (and its client going away, and the server shutting down) cancel
/// the handler's task. grpc-swift-2 only flags the call as cancelled when its `grpc-timeout`
/// passes and leaves the handler running to the end, its answer thrown away; a storage read
/// or a sleep in the handler would go on using the pool for nobody. The handler runs as one
/// child of a task group and a watch for the flag as the other: whichever ends first ends
/// the other.
struct DeadlineInterceptor: ServerInterceptor {
    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        // The group's children end before it returns, so `next` does not outlive this call.
        try await withoutActuallyEscaping(next) { next in
            try await withThrowingTaskGroup(of: StreamingServerResponse<Output>?.self) { group in
                group.addTask { try await next(request, context) }
                group.addTask {
                    try await context.cancellation.cancelled
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let response = first else {
                    throw RPCError(code: .cancelled, message: "The call was cancelled: its deadline passed or its client left")
                }
                return response
            }
        }
    }
}
