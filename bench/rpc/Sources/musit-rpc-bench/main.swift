// One internal call, the same handler behind both, over gRPC (HTTP/2, protobuf, one
// multiplexed connection) and over JSON on HTTP/1.1 (a keep-alive connection per
// concurrent caller): latency percentiles, throughput, and CPU per call in the caller and
// in the service (read from /proc before and after).
//
//   musit-rpc-bench --grpc HOST:PORT --http HOST:PORT --pid SERVICE_PID
//                   [--method check|overview] [--calls N] [--concurrency C]
import AsyncHTTPClient
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import MusitRPC
import NIOCore
import NIOPosix
import SwiftProtobuf

struct Options {
    var grpc = "127.0.0.1:9101"
    var http = "127.0.0.1:9102"
    var pid: Int32 = 0
    var method = "check"
    var calls = 20_000
    var concurrency = 1

    init(_ args: [String]) {
        var i = 1
        func next() -> String { i += 1; return args[i] }
        while i < args.count {
            switch args[i] {
            case "--grpc": grpc = next()
            case "--http": http = next()
            case "--pid": pid = Int32(next())!
            case "--method": method = next()
            case "--calls": calls = Int(next())!
            case "--concurrency": concurrency = Int(next())!
            default: fatalError("unknown option \(args[i])")
            }
            i += 1
        }
    }
}

/// utime + stime of a process, in microseconds.
func cpuMicros(pid: Int32) -> Double {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = text.lastIndex(of: ")") else { return 0 }
    let fields = text[text.index(after: close)...].split(separator: " ")
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return (Double(fields[11])! + Double(fields[12])!) / ticks * 1e6
}

func selfCPUMicros() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec)
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// Runs `calls` calls of `one` from `concurrency` tasks; returns each call's latency (µs).
func drive(calls: Int, concurrency: Int, _ one: @escaping @Sendable () async throws -> Void) async throws -> [Double] {
    try await withThrowingTaskGroup(of: [Double].self) { group in
        for worker in 0..<concurrency {
            let share = calls / concurrency + (worker < calls % concurrency ? 1 : 0)
            group.addTask {
                var out: [Double] = []
                out.reserveCapacity(share)
                let clock = ContinuousClock()
                for _ in 0..<share {
                    let start = clock.now
                    try await one()
                    let d = clock.now - start
                    out.append(Double(d.components.seconds) * 1e6 + Double(d.components.attoseconds) / 1e12)
                }
                return out
            }
        }
        var all: [Double] = []
        for try await part in group { all += part }
        return all
    }
}

let options = Options(CommandLine.arguments)
let (gHost, gPort) = (String(options.grpc.split(separator: ":")[0]), Int(options.grpc.split(separator: ":")[1])!)

/// Runs a task's jobs on an event loop (as the gateway runs a request's task on its
/// connection's loop): the caller and its HTTP/2 connection share one thread.
final class LoopExecutor: TaskExecutor {
    let loop: any EventLoop
    init(_ loop: any EventLoop) { self.loop = loop }
    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let executor = asUnownedTaskExecutor()
        loop.execute { job.runSynchronously(on: executor) }
    }
}

let loop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
let transport = try HTTP2ClientTransport.Posix(target: .ipv4(address: gHost, port: gPort), transportSecurity: .plaintext,
                                               eventLoopGroup: loop)
let grpc = GRPCClient(transport: transport)
let http = HTTPClient(eventLoopGroupProvider: .singleton,
                      configuration: .init(connectionPool: .init(idleTimeout: .seconds(60),
                                                                  concurrentHTTP1ConnectionsPerHostSoftLimit: options.concurrency)))

func measure(grpc: GRPCClient<HTTP2ClientTransport.Posix>, http: HTTPClient, options: Options) async throws {
    let health = Grpc_Health_V1_Health.Client(wrapping: grpc)
    let stats = Musit_Stats_V1_Stats.Client(wrapping: grpc)
    let method = options.method
    let overviewRequest = Musit_Stats_V1_OverviewRequest.with { $0.days = 30 }
    let grpcCall: @Sendable () async throws -> Void
    if method == "check" {
        grpcCall = { _ = try await health.check(Grpc_Health_V1_HealthCheckRequest()) }
    } else {
        grpcCall = { _ = try await stats.overview(overviewRequest) }
    }
    let path = method == "check" ? "grpc.health.v1.Health/Check" : "musit.stats.v1.Stats/Overview"
    let body: [UInt8]
    if method == "check" {
        body = try Grpc_Health_V1_HealthCheckRequest().jsonUTF8Bytes()
    } else {
        body = try overviewRequest.jsonUTF8Bytes()
    }
    let url = "http://\(options.http)/rpc/\(path)"
    let jsonCall: @Sendable () async throws -> Void = {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        let response = try await http.execute(request, timeout: .seconds(10))
        let answer = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .ok else { fatalError("JSON call failed: \(response.status)") }
        if method == "check" {
            _ = try Grpc_Health_V1_HealthCheckResponse(jsonUTF8Bytes: Array(answer.readableBytesView))
        } else {
            _ = try Musit_Stats_V1_OverviewResponse(jsonUTF8Bytes: Array(answer.readableBytesView))
        }
    }
    for (name, call) in [("grpc", grpcCall), ("json", jsonCall)] {
        _ = try await drive(calls: min(1000, options.calls), concurrency: options.concurrency, call)   // warm up
        let server0 = cpuMicros(pid: options.pid), client0 = selfCPUMicros()
        let wall0 = ContinuousClock.now
        let latencies = try await drive(calls: options.calls, concurrency: options.concurrency, call).sorted()
        let wall = ContinuousClock.now - wall0
        let server = (cpuMicros(pid: options.pid) - server0) / Double(options.calls)
        let client = (selfCPUMicros() - client0) / Double(options.calls)
        let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        print(String(format: "%@ %@ c=%d calls=%d p50_us=%.1f p99_us=%.1f rate=%.0f server_cpu_us=%.1f client_cpu_us=%.1f",
                     name, method, options.concurrency, options.calls, percentile(latencies, 0.5), percentile(latencies, 0.99),
                     Double(options.calls) / seconds, server, client))
    }
}

let executor = LoopExecutor(loop.next())
try await withTaskExecutorPreference(executor) {
    try await withThrowingDiscardingTaskGroup { group in
        group.addTask { try await grpc.runConnections() }
        try await measure(grpc: grpc, http: http, options: options)
        grpc.beginGracefulShutdown()
    }
}
try await http.shutdown()
