// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Musit",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "musit-tui", targets: ["musit-tui"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        // Thin C shims over Debian's system libraries.
        .systemLibrary(name: "CNcursesw", pkgConfig: "ncursesw", providers: [.apt(["libncursesw5-dev"])]),
        .systemLibrary(name: "CALSA", pkgConfig: "alsa", providers: [.apt(["libasound2-dev"])]),
        .systemLibrary(name: "CMPG123", pkgConfig: "libmpg123", providers: [.apt(["libmpg123-dev"])]),

        // MP3 decoding, tags, ALSA output and the playback engine.
        .target(name: "MusitAudio", dependencies: ["CALSA", "CMPG123"]),
        // Settings from flags, environment and the config file.
        .target(name: "MusitConfig"),
        // Curses screens.
        .target(name: "MusitTerminal", dependencies: ["CNcursesw", "MusitAudio"]),
        // The thin executable.
        .executableTarget(
            name: "musit-tui",
            dependencies: [
                "MusitAudio", "MusitConfig", "MusitTerminal",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Fixtures, PCM capture reading and signal analysis shared by the tests.
        .target(name: "MusitTestSupport", path: "Tests/MusitTestSupport"),
        .testTarget(name: "MusitAudioTests", dependencies: ["MusitAudio", "MusitTestSupport"]),
        .testTarget(name: "MusitCLITests", dependencies: ["musit-tui", "MusitConfig", "MusitTerminal", "MusitTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
