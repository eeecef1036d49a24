// swift-tools-version:6.0
// The NIO floor for media: a bare SwiftNIO HTTP/1 server answering the bench's Range and
// whole-file GETs from memory (or with sendfile), no framework above NIO. It measures how
// close any server on NIO can come to nginx on this machine; bench/edge.sh runs it beside
// Musit and nginx when it is built (`swift build -c release` here).
import PackageDescription

let package = Package(
    name: "niofloor",
    dependencies: [.package(url: "https://github.com/apple/swift-nio", from: "2.101.2")],
    targets: [
        .executableTarget(name: "niofloor", dependencies: [
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ]),
    ]
)
