// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "Musit",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "musit-tui", targets: ["musit-tui"]),
        // The view model and renderer, for the UI benchmarks in bench/ui.
        .library(name: "MusitUI", targets: ["MusitViewModel", "MusitRender"]),
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
        // The UI as data: state, actions, reducer, keymap, layout, paged queue. No curses.
        .target(name: "MusitViewModel"),
        // State to a screen buffer of cells, diffs, themes. No curses.
        .target(name: "MusitRender", dependencies: ["MusitViewModel"]),
        // ncursesw: drawing buffer diffs, input on its own thread, terminal lifecycle.
        .target(name: "MusitTerminal", dependencies: ["CNcursesw", "MusitRender", "MusitViewModel"]),
        // Local files and folders as a paged queue source, scanned in the background.
        .target(name: "MusitLibrary", dependencies: ["MusitViewModel"]),
        // Wires the store to the player, the library and the terminal.
        .target(name: "MusitApp", dependencies: ["MusitAudio", "MusitConfig", "MusitLibrary", "MusitRender",
                                                 "MusitTerminal", "MusitViewModel"]),
        // The thin executable.
        .executableTarget(
            name: "musit-tui",
            dependencies: [
                "MusitApp", "MusitAudio", "MusitConfig", "MusitRender",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // Fixtures, PCM capture reading and signal analysis shared by the tests.
        .target(name: "MusitTestSupport", path: "Tests/MusitTestSupport"),
        .testTarget(name: "MusitAudioTests", dependencies: ["MusitAudio", "MusitTestSupport"]),
        .testTarget(name: "MusitViewModelTests", dependencies: ["MusitViewModel", "MusitRender", "MusitLibrary", "MusitTestSupport"]),
        .testTarget(name: "MusitCLITests", dependencies: ["musit-tui", "MusitConfig", "MusitTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
