import Foundation
import Hummingbird
import NIOCore
import Prometheus
import Synchronization

/// Requests per route, for the admin statistics.
final class RouteCounter: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    func add(_ route: String) { counts.withLock { $0[route, default: 0] += 1 } }
    var snapshot: [String: Int] { counts.withLock { $0 } }
}

/// The metric handles of each route, method and status, made once: a swift-metrics lookup
/// by label and dimensions on every request costs more than the request's own work.
final class RequestMetrics: Sendable {
    struct Endpoint: Sendable {
        let requests: Prometheus.Counter
        let duration: DurationHistogram
        /// Only for answers that are errors (4xx, 5xx): no zero series for successes.
        let errors: Prometheus.Counter?
        /// "GET /api/v1/events", the key of the admin statistics' requests per route.
        let route: String
    }

    private struct Key: Hashable {
        let path: String?
        let method: HTTPRequest.Method
        let status: HTTPResponse.Status
    }

    private let endpoints = Mutex<[Key: Endpoint]>([:])
    private let meters = Mutex<[HTTPRequest.Method: Prometheus.Gauge]>([:])

    func active(_ method: HTTPRequest.Method) -> Prometheus.Gauge {
        meters.withLock { m in
            if let meter = m[method] { return meter }
            let meter = MetricsSetup.registry.makeGauge(descriptor: .init(metricName: "http_server_active_requests", unitName: "",
                                                                             helpText: "Requests being answered now, by method."),
                                                        labels: [("http_request_method", method.rawValue)])
            m[method] = meter
            return meter
        }
    }

    func endpoint(_ path: String?, _ method: HTTPRequest.Method, _ status: HTTPResponse.Status) -> Endpoint {
        let key = Key(path: path, method: method, status: status)
        return endpoints.withLock { e in
            if let endpoint = e[key] { return endpoint }
            let route = path ?? "unmatched"
            let registry = MetricsSetup.registry
            let labels = [("http_route", route), ("http_request_method", method.rawValue),
                          ("http_response_status_code", String(status.code))]
            let endpoint = Endpoint(
                requests: registry.makeCounter(descriptor: .init(metricName: "hb_requests", unitName: "total",
                                                                  helpText: "Requests answered, by route, method and status."),
                                               labels: labels),
                duration: registry.makeDurationHistogram(
                    descriptor: .init(metricName: "http_server_request_duration", unitName: "seconds",
                                      helpText: "Time from a request's head to its answer, by route, method and status."),
                    labels: labels, buckets: MetricsSetup.durationBuckets),
                errors: status.code < 400 ? nil
                    : registry.makeCounter(descriptor: .init(metricName: "hb_request_errors", unitName: "total",
                                                              helpText: "Requests answered with a client (4xx) or server (5xx) error, by route, method and status."),
                                           labels: [("http_route", route), ("http_request_method", method.rawValue),
                                                    ("error_type", String(status.code)), ("status_class", "\(status.code / 100)xx")]),
                route: "\(method.rawValue) \(route)")
            e[key] = endpoint
            return endpoint
        }
    }
}

/// The Prometheus registry `/metrics` emits.
enum MetricsSetup {
    static let registry: PrometheusCollectorRegistry = {
        PrometheusCollectorRegistry()
    }()

    // Every family is made through the registry, with its HELP text: promtool requires one,
    // and the swift-metrics facade has no way to give it.
    static let heldPolls = registry.makeGauge(descriptor: .init(metricName: "musit_long_polls_held", unitName: "",
                                                                            helpText: "Long-polls held open, waiting for an event."))
    static let activeStreams = registry.makeGauge(descriptor: .init(metricName: "musit_streams_active", unitName: "",
                                                                                helpText: "Audio bodies being streamed now."))
    static let uploads = registry.makeCounter(descriptor: .init(metricName: "musit_uploads", unitName: "total",
                                                                            helpText: "Songs uploaded and stored."))
    static let uploadBytes = registry.makeCounter(descriptor: .init(metricName: "musit_upload_bytes", unitName: "total",
                                                                                helpText: "Bytes of songs uploaded and stored."))
    static let eventsDelivered = registry.makeCounter(descriptor: .init(metricName: "musit_events_delivered", unitName: "total",
                                                                        helpText: "Events sent to clients in long-poll answers."))
    /// From the bus handing a held poll its wake to the answer written: what a held
    /// client waits beyond the commit on this instance (or the notice from another).
    static let eventDelivery = registry.makeDurationHistogram(
        descriptor: .init(metricName: "musit_event_delivery", unitName: "seconds",
                          helpText: "Time from an event waking a held long-poll to its answer written."),
        buckets: [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2.5), .milliseconds(5),
                  .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                  .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10)])
    static let streamedBytes = registry.makeCounter(descriptor: .init(metricName: "musit_stream_bytes", unitName: "total",
                                                                      helpText: "Bytes of audio and HLS segments sent to clients."))
    /// The server's own families, listed from the start at 0.
    static func listFamilies() {
        _ = (heldPolls, activeStreams, uploads, uploadBytes, eventsDelivered, eventDelivery, streamedBytes)
    }

    /// Request durations from 1 ms to 60 s (a held long-poll lasts up to a minute).
    static let durationBuckets: [Duration] = [.milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25),
                                              .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1),
                                              .seconds(2.5), .seconds(5), .seconds(10), .seconds(30), .seconds(60)]
}

extension MetricsSetup {
    static let mediaFree = registry.makeGauge(descriptor: .init(metricName: "musit_media_free_bytes", unitName: "",
                                                                helpText: "Bytes free on the media directory's filesystem, for this process's user."))
    static let mediaSize = registry.makeGauge(descriptor: .init(metricName: "musit_media_size_bytes", unitName: "",
                                                                helpText: "Size of the media directory's filesystem, in bytes."))

    /// The media volume's size and free space, read at each scrape (one statvfs).
    static func measureVolume(_ path: String) {
        var s = statvfs()
        guard statvfs(path, &s) == 0 else { return }
        mediaFree.set(Double(s.f_bavail) * Double(s.f_frsize))
        mediaSize.set(Double(s.f_blocks) * Double(s.f_frsize))
    }

    static func response() -> Response {
        Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                 body: .init(byteBuffer: ByteBuffer(bytes: registry.emitToBuffer())))
    }
}
