// swift-tools-version: 6.1
// UI benchmarks, kept out of the main build: swift run -c release in this folder.
import PackageDescription

let package = Package(
    name: "MusitUIBench",
    dependencies: [.package(name: "Musit", path: "../..")],
    targets: [
        .executableTarget(name: "musit-ui-bench", dependencies: [.product(name: "MusitUI", package: "Musit")]),
    ],
    swiftLanguageModes: [.v6]
)
