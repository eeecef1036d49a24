// swift-tools-version: 6.1
import Foundation
import PackageDescription

/// The player's functions first in the executable (scripts/generate-link-order.sh).
let linkOrder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("link/player-first.order").path

let package = Package(
    name: "Musit",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "musit-tui", targets: ["musit-tui"]),
        // The view model and renderer, for the UI benchmarks in bench/ui.
        .library(name: "MusitUI", targets: ["MusitViewModel", "MusitRender"]),
        // The services' generated messages and stubs, for bench/rpc.
        .library(name: "MusitRPC", targets: ["MusitRPC"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.8.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-crypto", "4.1.0"..<"5.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/vapor/multipart-kit", from: "4.7.1"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        // Both exporters: OTLP/HTTP, and OTLP/gRPC, whose dependencies the services build anyway.
        .package(url: "https://github.com/swift-otel/swift-otel", from: "1.6.0", traits: ["OTLPHTTP", "OTLPGRPC"]),
        .package(url: "https://github.com/apple/swift-distributed-tracing", from: "1.7.3"),
        .package(url: "https://github.com/apple/swift-service-context", from: "1.5.1"),
    ],
    targets: [
        // Thin C shims over Debian's system libraries.
        .systemLibrary(name: "CNcursesw", pkgConfig: "ncursesw", providers: [.apt(["libncursesw5-dev"])]),
        .systemLibrary(name: "CALSA", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
        .systemLibrary(name: "CMPG123", pkgConfig: "libmpg123", providers: [.apt(["libmpg123-dev"])]),
        // The codecs' headers only: their libraries are loaded when a file needs them
        // (CCodecLoader), so no pkg-config (whose flags would link them).
        .systemLibrary(name: "CFLAC", providers: [.apt(["libflac-dev"])]),
        .systemLibrary(name: "CVorbisFile", providers: [.apt(["libvorbis-dev"])]),
        .systemLibrary(name: "COpusFile", providers: [.apt(["libopusfile-dev"])]),
        .target(name: "CCodecLoader", cSettings: [.unsafeFlags(["-I/usr/include/opus"])]),
        // MPRIS over sd-bus, libsystemd loaded when a session bus is there.
        .target(name: "CMPRIS"),
        .target(name: "MusitMPRIS", dependencies: ["CMPRIS", "MusitAudio", "MusitCodecs"]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CTurboJPEG", pkgConfig: "libturbojpeg", providers: [.apt(["libturbojpeg0-dev"])]),

        // The decoders, portable and without a device: MP3, FLAC, Ogg Vorbis and Opus, tags,
        // exact lengths, full verification, HLS indexes, streamed and ranged sources. The
        // server links these, not ALSA.
        .target(name: "MusitCodecs", dependencies: ["CMPG123", "CCodecLoader", "CFLAC", "CVorbisFile", "COpusFile"],
                swiftSettings: [.unsafeFlags(["-Xcc", "-I/usr/include/opus"])]),
        // Playback: ALSA output, the engine on its own thread, the queue, the visualizer's tap.
        .target(name: "MusitAudio", dependencies: ["CALSA", "MusitCodecs"]),
        // Colours and pictures, portable: OKLab, contrast, palettes, covers as cells.
        .target(name: "MusitArt"),
        // Cover images (PNG, JPEG) to pixels through Debian's libpng and libjpeg-turbo.
        .target(name: "MusitImage", dependencies: ["CPNG", "CTurboJPEG", "MusitArt"]),
        // Settings from flags, environment and the config file.
        .target(name: "MusitConfig"),
        // The UI as data: state, actions, reducer, keymap, layout, paged queue. No curses.
        .target(name: "MusitViewModel", dependencies: ["MusitArt"]),
        // State to a screen buffer of cells, diffs, themes. No curses.
        .target(name: "MusitRender", dependencies: ["MusitArt", "MusitViewModel"]),
        // ncursesw: drawing buffer diffs, input on its own thread, terminal lifecycle.
        .target(name: "MusitTerminal", dependencies: ["CNcursesw", "MusitArt", "MusitRender", "MusitViewModel"]),
        // Local files and folders as a paged queue source, scanned in the background.
        .target(name: "MusitLibrary", dependencies: ["MusitViewModel"]),
        // Types the server and its clients share: requests, responses, problems.
        .target(name: "MusitAPI"),
        // The services' contracts: messages and stubs generated from proto/ by
        // scripts/generate-proto.sh, committed (no protoc in the build).
        .target(name: "MusitRPC", dependencies: [
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ]),
        // The backend: HTTP routes, accounts, storage (SQLite through GRDB).
        .target(name: "MusitServer", dependencies: [
            "MusitAPI", "MusitCodecs", "MusitConfig", "MusitRPC",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCInProcessTransport", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "OTel", package: "swift-otel"),
            .product(name: "Tracing", package: "swift-distributed-tracing"),
            .product(name: "Instrumentation", package: "swift-distributed-tracing"),
            .product(name: "ServiceContextModule", package: "swift-service-context"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
            .product(name: "JWTKit", package: "jwt-kit"),
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "MultipartKit", package: "multipart-kit"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        // The player's side of the API: requests with token refresh, the sync loop, the chat
        // outbox and HLS streams fed to the audio engine.
        .target(name: "MusitClient", dependencies: [
            "MusitAPI", "MusitAudio", "MusitCodecs",
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOFoundationCompat", package: "swift-nio"),
        ]),
        // Wires the store to the player, the library and the terminal.
        .target(name: "MusitApp", dependencies: ["MusitAPI", "MusitAudio", "MusitClient", "MusitCodecs", "MusitConfig", "MusitImage", "MusitLibrary",
                                                 "MusitRender", "MusitTerminal", "MusitViewModel"]),
        // The thin executable.
        .executableTarget(
            name: "musit-tui",
            dependencies: [
                "MusitApp", "MusitAudio", "MusitClient", "MusitCodecs", "MusitConfig", "MusitMPRIS", "MusitRender", "MusitServer", "MusitViewModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            // Resident memory of the player: the executable stays position-independent, but
            // its 150,000 relocations are packed (RELR: 30 KB instead of 3.7 MB to read and
            // apply at start), and its symbols are not exported, so the dynamic symbol table
            // (2.5 MB that the runtime's backtracer walks at start) is not made. 29 → 19 MB
            // for `--headless`.
            // The functions the player was seen to run are placed first, then the rest of
            // its modules (link/player-first.order, scripts/generate-link-order.sh), so a
            // process that only plays faults in few 64 KiB windows of code and none of the
            // backend's around them: peak RSS of `--headless` 20.9 → 16.4 MB (bench/audio.sh).
            linkerSettings: [.unsafeFlags(["-use-ld=lld", "-Xlinker", "--no-export-dynamic",
                                           "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                                           "-Xlinker", "--symbol-ordering-file=\(linkOrder)",
                                           "-Xlinker", "--no-warn-symbol-ordering"])]
        ),

        // Fixtures, PCM capture reading and signal analysis shared by the tests.
        .target(name: "MusitTestSupport", path: "Tests/MusitTestSupport"),
        .testTarget(name: "MusitAudioTests", dependencies: ["MusitAudio", "MusitCodecs", "MusitTestSupport"]),
        .testTarget(name: "MusitViewModelTests", dependencies: ["MusitArt", "MusitImage", "MusitViewModel", "MusitRender", "MusitLibrary", "MusitTestSupport"]),
        .testTarget(name: "MusitServerTests", dependencies: [
            "MusitServer", "MusitAPI", "MusitCodecs", "MusitTestSupport",
            .product(name: "GRDB", package: "GRDB.swift"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
        .testTarget(name: "MusitClientTests", dependencies: [
            "MusitClient", "MusitApp", "MusitViewModel", "MusitServer", "MusitAPI", "MusitAudio", "MusitCodecs", "MusitTestSupport",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "MusitCLITests", dependencies: ["musit-tui", "MusitArt", "MusitAudio", "MusitCodecs", "MusitConfig", "MusitTestSupport", "MusitViewModel"]),
    ],
    swiftLanguageModes: [.v6]
)

// Every function of Musit's own modules in a section of its own, so that the link order
// (link/player-first.order) can place the functions the player runs next to each other
// instead of moving whole source files: a process that only plays then faults in the
// pages of those functions, not of everything compiled beside them.
for target in package.targets where target.type == .regular || target.type == .executable {
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-Xfrontend", "-function-sections"])]
}
