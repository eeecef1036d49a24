import Foundation
import Logging

/// One JSON object per line on stderr (through `LogSink`), for people and for Loki: `time` (RFC 3339, UTC, with
/// milliseconds), `level`, `message`, `service` (`musit-<role>`, or `OTEL_SERVICE_NAME`),
/// `logger`, then the metadata: the request id (`hb.request.id`) and, inside a span,
/// `trace_id` and `span_id`. Secrets never reach it (`RequestMiddleware.redacted`).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    /// Metadata of the moment, such as the current span's `trace_id` and `span_id`.
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let service: String

    public init(label: String, service: String = "musit", metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.service = service
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var object: [String: Any] = ["time": Date().ISO8601Format(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted)),
                                     "level": event.level.rawValue, "service": service, "logger": label,
                                     "message": "\(event.message)"]
        var all = metadata
        if let provided = metadataProvider?.get() { all.merge(provided, uniquingKeysWith: { $1 }) }
        all.merge(event.metadata ?? [:], uniquingKeysWith: { $1 })
        for (k, v) in all where object[k] == nil { object[k] = Self.plain(v) }
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else { return }
        LogSink.standardError.append(data + [UInt8(ascii: "\n")])
    }

    static func plain(_ v: Logger.MetadataValue) -> Any {
        switch v {
        case .string(let s): return s
        case .stringConvertible(let s): return s.description
        case .array(let a): return a.map(plain)
        case .dictionary(let d): return d.mapValues(plain)
        }
    }
}
