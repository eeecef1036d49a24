import Foundation
import Logging
import Synchronization

/// Log lines on stderr, written in batches as nginx writes its access log with `buffer=`:
/// a line waits at most `interval` (or until `limit` bytes wait) and one write(2) takes
/// all that waits, so a busy server does not make a system call per request. A line that
/// fills the buffer is written by its caller at once; the rest by a thread of the sink's
/// own, never by the event loops or the cooperative pool. Whatever waits is written at
/// exit; a kill -9 loses at most `interval` of lines.
public final class LogSink: TextOutputStream, Sendable {
    public static let standardError = LogSink(descriptor: 2)

    /// Seconds a line may wait.
    static let interval = 0.1
    static let limit = 64 * 1024

    private let descriptor: Int32
    private let state = Mutex<(pending: [UInt8], writer: Bool)>(([], false))
    /// One write at a time, so that lines keep their order across a full buffer and the
    /// flusher.
    private let writing = Mutex<Void>(())

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// Takes one line (swift-log's `StreamLogHandler` writes a line per call).
    public func write(_ string: String) {
        append(string.utf8)
    }

    /// Takes one line's bytes.
    func append(_ bytes: some Collection<UInt8>) {
        let (full, startWriter) = state.withLock { s -> (Bool, Bool) in
            s.pending.append(contentsOf: bytes)
            let start = !s.writer
            s.writer = true
            return (s.pending.count >= Self.limit, start)
        }
        if startWriter {
            // What waits at exit too (a clean stop returns from main; `exit` after an error).
            atexit { LogSink.standardError.flush() }
            let thread = Thread { [self] in
                while true {
                    Thread.sleep(forTimeInterval: Self.interval)
                    flush()
                }
            }
            thread.name = "musit-log"
            thread.start()
        }
        if full { flush() }
    }

    /// Writes what waits, now.
    public func flush() {
        writing.withLock { _ in
            let bytes = state.withLock { s -> [UInt8] in
                defer { s.pending.removeAll(keepingCapacity: true) }
                return s.pending
            }
            bytes.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = Foundation.write(descriptor, raw.baseAddress! + offset, raw.count - offset)
                    if n < 0 && errno == EINTR { continue }
                    if n <= 0 { return }  // stderr closed or full: the lines are dropped, not retried forever
                    offset += n
                }
            }
        }
    }
}

/// A handler writing through `LogSink`, with notices and worse written at once (and what
/// waited before them): what is worth noting (a migration applied, a cap reached, a
/// problem) is on stderr when it happens, not 100 ms later; the request lines (info) wait.
public struct SinkLogHandler: LogHandler {
    private var inner: any LogHandler

    public init(_ inner: any LogHandler) {
        self.inner = inner
    }

    public func log(event: LogEvent) {
        inner.log(event: event)
        if event.level >= .notice { LogSink.standardError.flush() }
    }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue }
    }
}
