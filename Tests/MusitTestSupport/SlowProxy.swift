import Foundation
import Synchronization

/// A TCP proxy on loopback that throttles what flows back to the client: a slow link
/// between a player and its server, without a network namespace. Threads, blocking sockets.
public final class SlowProxy: Sendable {
    public let port: Int
    private let listener: Int32
    private let upstream: Int
    private let bytesPerSecond: Mutex<Int>
    private let closed = Atomic<Bool>(false)

    /// Forwards 127.0.0.1:`port` to 127.0.0.1:`upstream`, server-to-client at `bytesPerSecond`.
    public init(upstream: Int, bytesPerSecond: Int) {
        self.upstream = upstream
        self.bytesPerSecond = Mutex(bytesPerSecond)
        (listener, port) = RawHTTP.listen()
        let t = Thread { [self] in acceptLoop() }
        t.name = "slow-proxy"
        t.start()
    }

    /// Changes the rate for data sent from now on (0 stalls the link).
    public func setRate(_ bytesPerSecond: Int) { self.bytesPerSecond.withLock { $0 = bytesPerSecond } }

    public func close() {
        closed.store(true, ordering: .relaxed)
        shutdown(listener, Int32(SHUT_RDWR))
        Glibc.close(listener)
    }

    private func acceptLoop() {
        while !closed.load(ordering: .relaxed) {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            let server = RawHTTP.connect(port: upstream)
            if server < 0 {
                Glibc.close(client)
                continue
            }
            Thread.detachNewThread { [self] in pump(from: client, to: server, throttled: false) }
            Thread.detachNewThread { [self] in pump(from: server, to: client, throttled: true) }
        }
    }

    private func pump(from: Int32, to: Int32, throttled: Bool) {
        var buf = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let want = throttled ? max(1, min(buf.count, bytesPerSecond.withLock { $0 } / 20)) : buf.count
            let n = recv(from, &buf, want, 0)
            if n <= 0 { break }
            var sent = 0
            while sent < n {
                let m = buf.withUnsafeBytes { Glibc.send(to, $0.baseAddress! + sent, n - sent, Int32(MSG_NOSIGNAL)) }
                if m <= 0 { break }
                sent += m
            }
            if throttled {
                // Hold each slice for its share of a second; a rate of 0 stalls until it changes.
                while bytesPerSecond.withLock({ $0 }) == 0 && !closed.load(ordering: .relaxed) { usleep(10_000) }
                let rate = max(1, bytesPerSecond.withLock { $0 })
                usleep(UInt32(min(1_000_000, Double(n) / Double(rate) * 1_000_000)))
            }
        }
        if throttled {
            // Server to client ended: the connection is over; this side closes both.
            shutdown(to, Int32(SHUT_RDWR))
            shutdown(from, Int32(SHUT_RDWR))
            Glibc.close(from)
            Glibc.close(to)
        } else {
            // The client stopped sending: pass the half-close on.
            shutdown(to, Int32(SHUT_WR))
        }
    }
}
