import Foundation

/// HTTP/1.1 over a plain loopback socket, for tests that need to misbehave (hang up
/// mid-body, read slowly) or run without an HTTP client library.
public enum RawHTTP {
    /// A listening TCP socket on 127.0.0.1 with a port the kernel picked, and that port.
    public static func listen(backlog: Int32 = 64) -> (fd: Int32, port: Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        Glibc.listen(fd, backlog)
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    /// A loopback port that was free a moment ago (nothing listens on it now).
    public static func freePort() -> Int {
        let (fd, port) = listen()
        close(fd)
        return port
    }

    /// A connected TCP socket to 127.0.0.1:`port`, or -1.
    /// `from`: the local address to connect from (any of 127.0.0.0/8 is this machine), so a
    /// test can be several clients that the server tells apart by address.
    public static func connect(port: Int, receiveBuffer: Int32? = nil, from source: String? = nil) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            _ = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
        }
        if var size = receiveBuffer {
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if ok != 0 {
            close(fd)
            return -1
        }
        return fd
    }

    public static func send(_ fd: Int32, _ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, 0) }
    }

    /// Reads until the peer closes (or `limit` bytes).
    public static func receive(_ fd: Int32, limit: Int = .max) -> [UInt8] {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while out.count < limit {
            let n = recv(fd, &buf, buf.count, 0)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return out
    }

    /// Sends `text` and returns the whole answer; nil when nothing listens.
    public static func request(port: Int, _ text: String, from source: String? = nil) -> String? {
        let fd = connect(port: port, from: source)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        send(fd, Array(text.utf8))
        return String(decoding: receive(fd), as: UTF8.self)
    }

    /// Sends `bytes` and closes the connection at once.
    public static func sendAndHangUp(port: Int, bytes: [UInt8]) {
        let fd = connect(port: port)
        guard fd >= 0 else { return }
        send(fd, bytes)
        close(fd)
    }
}
