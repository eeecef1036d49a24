// niofloor PORT FILE [memory|sendfile]
//
// Answers every GET with the file: a single `Range: bytes=a-b` as 206 with the headers
// Musit's media route sends (Content-Type, Accept-Ranges, ETag, Last-Modified,
// Content-Range), otherwise 200 with the whole file. `memory` (the default) writes a slice
// of the file held in one ByteBuffer, as Musit's cache does; `sendfile` writes a FileRegion
// of one descriptor opened at start, as nginx does.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

let args = CommandLine.arguments
guard args.count >= 3, let port = Int(args[1]) else {
    FileHandle.standardError.write(Data("usage: niofloor PORT FILE [memory|sendfile]\n".utf8))
    exit(2)
}
let useSendfile = args.count > 3 && args[3] == "sendfile"
let bytes = try Data(contentsOf: URL(fileURLWithPath: args[2]))
let size = bytes.count
let whole = ByteBuffer(bytes: bytes)
let handle = try NIOFileHandle(_deprecatedPath: args[2])

final class MediaHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private var range: Range<Int>?
    private var keepAlive = true

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            keepAlive = head.isKeepAlive
            range = head.headers.first(name: "range").flatMap(Self.parse)
        case .body:
            break
        case .end:
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: "audio/mpeg")
            headers.add(name: "Accept-Ranges", value: "bytes")
            headers.add(name: "ETag", value: "\"0123456789abcdef0123456789abcdef\"")
            headers.add(name: "Last-Modified", value: "Mon, 07 Dec 2026 10:00:00 GMT")
            let wanted = range ?? 0..<size
            if range != nil {
                headers.add(name: "Content-Range", value: "bytes \(wanted.lowerBound)-\(wanted.upperBound - 1)/\(size)")
            }
            headers.add(name: "Content-Length", value: "\(wanted.count)")
            let head = HTTPResponseHead(version: .http1_1, status: range != nil ? .partialContent : .ok, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            if useSendfile {
                let region = FileRegion(fileHandle: handle, readerIndex: wanted.lowerBound, endIndex: wanted.upperBound)
                context.write(wrapOutboundOut(.body(.fileRegion(region))), promise: nil)
            } else {
                context.write(wrapOutboundOut(.body(.byteBuffer(whole.getSlice(at: wanted.lowerBound, length: wanted.count)!))),
                              promise: nil)
            }
            if keepAlive {
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            } else {
                let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in bound.value.close(promise: nil) }
            }
        }
    }

    /// `bytes=a-b`, one range inside the file.
    static func parse(_ value: String) -> Range<Int>? {
        guard value.hasPrefix("bytes=") else { return nil }
        let parts = value.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let a = Int(parts[0]), let b = Int(parts[1]), a <= b, b < size else { return nil }
        return a..<(b + 1)
    }
}

let group = MultiThreadedEventLoopGroup.singleton
let channel = try ServerBootstrap(group: group)
    .serverChannelOption(.backlog, value: 1024)
    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { channel in
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.configureHTTPServerPipeline()
            try channel.pipeline.syncOperations.addHandler(MediaHandler())
        }
    }
    .bind(host: "127.0.0.1", port: port).wait()
print("niofloor on \(channel.localAddress!) (\(useSendfile ? "sendfile" : "memory"))")
try channel.closeFuture.wait()
