import Foundation

/// `musit-tui --probe http://127.0.0.1:8080/healthz`: one plain GET over IPv4, exit 0 when
/// it answers 200 within 3 s. The container's health check, where no curl is installed.
enum Probe {
    static func check(_ text: String) -> Bool {
        guard let url = URL(string: text), url.scheme == "http", let host = url.host else { return false }
        let port = UInt16(url.port ?? 80)
        let path = url.path.isEmpty ? "/" : url.path
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host == "localhost" ? "127.0.0.1" : host, &address.sin_addr) == 1 else { return false }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var timeout = timeval(tv_sec: 3, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { return false }
        let request = Array("GET \(path) HTTP/1.0\r\nHost: \(host)\r\n\r\n".utf8)
        guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { return false }
        var answer = [UInt8](repeating: 0, count: 64)
        let n = recv(fd, &answer, answer.count, 0)
        guard n >= 12 else { return false }
        // "HTTP/1.1 200 …"
        return String(decoding: answer[9..<12], as: UTF8.self) == "200"
    }
}
