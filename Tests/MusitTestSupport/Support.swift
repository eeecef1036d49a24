import Foundation
import Synchronization

/// Test audio made by scripts/make-test-audio.sh, and a hermetic ALSA configuration
/// with a `file` device that captures exactly what the player wrote.
public enum Fixtures {
    public static let packageRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static let dir: String = {
        let env = ProcessInfo.processInfo.environment["MUSIT_TEST_AUDIO"]
        let dir = env ?? packageRoot.appendingPathComponent(".build/test-audio").path
        // The script is a no-op when the fixtures are current.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [packageRoot.appendingPathComponent("scripts/make-test-audio.sh").path, dir]
        try? p.run()
        p.waitUntilExit()
        precondition(p.terminationStatus == 0, "scripts/make-test-audio.sh failed")
        return dir
    }()

    public static func path(_ name: String) -> String { dir + "/" + name }

    public struct Manifest: Decodable, Sendable {
        public struct Tagged: Decodable, Sendable {
            public let file: String
            public let title: String
            public let artist: String
            public let album: String
            public let year: Int
            public let track: Int
            public let cover: String?
            public let frames: Int64
        }
        public let tags: [Tagged]
    }

    public static let manifest: Manifest = {
        let data = try! Data(contentsOf: URL(fileURLWithPath: path("manifest.json")))
        return try! JSONDecoder().decode(Manifest.self, from: data)
    }()

    /// Writes the ALSA configuration once per process and points alsa-lib at it
    /// (before alsa-lib first reads its configuration).
    public static let alsaConfig: String = {
        let dir = NSTemporaryDirectory() + "musit-alsa-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let file = dir + "/asoundrc"
        let text = """
            pcm.testnull { type null }
            pcm.testfile {
                @args [ FILE ]
                @args.FILE { type string default "/dev/null" }
                type file
                slave.pcm "testnull"
                file $FILE
                format "raw"
            }
            # The same, never truncating: each opening of the device writes a file of its own
            # (FILE, FILE.0001, ...), so a device reopened for another format keeps both.
            pcm.testappend {
                @args [ FILE ]
                @args.FILE { type string default "/dev/null" }
                type file
                slave.pcm "testnull"
                file $FILE
                format "wav"
                truncate false
            }
            # A capture that records the negotiated format: a WAV file whose header says the
            # rate, channels and sample width the player opened the device with.
            pcm.testwav {
                @args [ FILE ]
                @args.FILE { type string default "/dev/null" }
                type file
                slave.pcm "testnull"
                file $FILE
                format "wav"
            }
            # A device that takes audio in blocks and plays it in real time through pv (as a
            # network or pipe sink does), telling no delay.
            pcm.testpaced {
                type plug
                slave { pcm "testpacedraw" format S16_LE rate 44100 channels 2 }
            }
            pcm.testpacedraw {
                type file
                slave.pcm "testnull"
                file "| pv -q -L 176400 > /dev/null"
                format "raw"
            }

            """
        try! text.write(toFile: file, atomically: true, encoding: .utf8)
        setenv("ALSA_CONFIG_PATH", file, 1)
        return file
    }()

    /// A fresh capture path and the ALSA device name that writes to it.
    public static func captureDevice(_ label: String = #function) -> (device: String, path: String) {
        _ = alsaConfig
        let safe = label.filter { $0.isLetter || $0.isNumber }
        let path = NSTemporaryDirectory() + "musit-capture-\(getpid())-\(safe)-\(UUID().uuidString.prefix(8)).raw"
        return ("testfile:FILE=\(path)", path)
    }
}

/// Interleaved S16 samples.
public struct PCM {
    public var samples: [Int16]
    public var channels: Int = 2
    public var frames: Int { samples.count / channels }

    public init(samples: [Int16], channels: Int = 2) {
        self.samples = samples
        self.channels = channels
    }

    public init(raw path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        samples = data.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
    }

    /// Reads the data chunk of a 16-bit PCM WAV file.
    /// A WAV file's format and its data bytes, as ALSA's file device writes them (a capture
    /// through `testwav` or `testappend`).
    public static func wavFile(_ path: String) throws -> (rate: Int, channels: Int, bits: Int, data: [UInt8]) {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        func le(_ at: Int, _ n: Int) -> Int { (0..<n).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) } }
        var i = 12, rate = 0, channels = 0, bits = 0
        while i + 8 <= bytes.count {
            let id = String(decoding: bytes[i..<i + 4], as: UTF8.self)
            let size = le(i + 4, 4)
            if id == "fmt " {
                channels = le(i + 10, 2)
                rate = le(i + 12, 4)
                bits = le(i + 22, 2)
            }
            // ALSA writes the data's size when it closes the device: until then it is 0, and
            // the data runs to the end of the file.
            if id == "data" { return (rate, channels, bits, Array(bytes[(i + 8)..<(size == 0 ? bytes.count : min(bytes.count, i + 8 + size))])) }
            i += 8 + size + (size & 1)
        }
        throw CocoaError(.fileReadCorruptFile)
    }

    public init(wav path: String) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        let bytes = [UInt8](data)
        var i = 12
        var channels = 2
        while i + 8 <= bytes.count {
            let id = String(decoding: bytes[i..<i + 4], as: UTF8.self)
            let size = Int(bytes[i + 4]) | Int(bytes[i + 5]) << 8 | Int(bytes[i + 6]) << 16 | Int(bytes[i + 7]) << 24
            if id == "fmt " { channels = Int(bytes[i + 10]) | Int(bytes[i + 11]) << 8 }
            if id == "data" {
                let body = bytes[(i + 8)..<min(bytes.count, i + 8 + size)]
                samples = body.withUnsafeBytes { Array($0.bindMemory(to: Int16.self)) }
                self.channels = channels
                return
            }
            i += 8 + size + (size & 1)
        }
        throw CocoaError(.fileReadCorruptFile)
    }

    /// One channel as doubles, from `start` frames for `count` frames.
    public func channel(_ c: Int, from start: Int = 0, count: Int? = nil) -> [Double] {
        let end = min(frames, start + (count ?? frames))
        guard start < end else { return [] }
        return (start..<end).map { Double(samples[$0 * channels + c]) }
    }

    public func rms(from start: Int = 0, count: Int? = nil) -> Double {
        let x = channel(0, from: start, count: count)
        return (x.reduce(0) { $0 + $1 * $1 } / Double(max(1, x.count))).squareRoot()
    }
}

public enum Signal {
    /// Power of frequency `f` in `x` (Goertzel).
    public static func power(_ x: [Double], frequency f: Double, rate: Double) -> Double {
        let w = 2 * Double.pi * f / rate
        let coeff = 2 * cos(w)
        var s1 = 0.0, s2 = 0.0
        for v in x {
            let s0 = v + coeff * s1 - s2
            s2 = s1
            s1 = s0
        }
        return s1 * s1 + s2 * s2 - coeff * s1 * s2
    }

    /// The strongest frequency in `x`: a coarse scan, then a fine one around the winner.
    public static func peakFrequency(_ x: [Double], rate: Double, range: ClosedRange<Double>) -> Double {
        func best(_ lo: Double, _ hi: Double, _ step: Double, _ data: [Double]) -> Double {
            var f = lo, bestF = lo, bestP = -1.0
            while f <= hi {
                let p = power(data, frequency: f, rate: rate)
                if p > bestP { bestP = p; bestF = f }
                f += step
            }
            return bestF
        }
        let coarse = best(range.lowerBound, range.upperBound, 5, Array(x.prefix(Int(rate))))
        return best(coarse - 5, coarse + 5, 0.1, x)
    }

    /// Pearson correlation of two equally long series.
    public static func correlation(_ a: [Double], _ b: [Double]) -> Double {
        let n = min(a.count, b.count)
        guard n > 1 else { return 0 }
        var ma = 0.0, mb = 0.0
        for i in 0..<n { ma += a[i]; mb += b[i] }
        ma /= Double(n); mb /= Double(n)
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in 0..<n {
            let da = a[i] - ma, db = b[i] - mb
            sab += da * db; saa += da * da; sbb += db * db
        }
        return sab / (saa * sbb).squareRoot()
    }

    /// The lag (in frames, within ±maxLag) at which `probe` best matches `reference`
    /// starting at `expectedStart`.
    public static func bestLag(probe: [Double], reference: [Double], expectedStart: Int, maxLag: Int) -> (lag: Int, correlation: Double) {
        var best = (lag: 0, correlation: -2.0)
        for lag in -maxLag...maxLag {
            let start = expectedStart + lag
            guard start >= 0, start + probe.count <= reference.count else { continue }
            let c = correlation(probe, Array(reference[start..<start + probe.count]))
            if c > best.correlation { best = (lag, c) }
        }
        return best
    }
}

/// A value behind a lock that closures can share.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>
    public init(_ value: Value) { mutex = Mutex(value) }
    public func withLock<R>(_ body: (inout Value) -> R) -> R { mutex.withLock { body(&$0) } }
}

/// Runs the real `musit-tui` binary.
public enum Binary {
    /// The executable built beside the test bundle.
    public static let path: String = {
        let besideTests = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("musit-tui").path
        if FileManager.default.isExecutableFile(atPath: besideTests) { return besideTests }
        return Fixtures.packageRoot.appendingPathComponent(".build/debug/musit-tui").path
    }()

    public struct Result: Sendable {
        public let status: Int32
        public let stdout: String
        public let stderr: String
        public let seconds: Double
    }

    /// Runs `executable` (default: musit-tui) with `arguments`; `environment` adds to a clean
    /// environment that holds the test ALSA configuration and a private XDG config home.
    public static func run(_ arguments: [String], environment: [String: String] = [:],
                           executable: String? = nil, prefix: [String] = []) throws -> Result {
        let p = Process()
        let exe = executable ?? path
        if prefix.isEmpty {
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = arguments
        } else {
            p.executableURL = URL(fileURLWithPath: prefix[0])
            p.arguments = Array(prefix.dropFirst()) + [exe] + arguments
        }
        var env = ["PATH": "/usr/bin:/bin", "ALSA_CONFIG_PATH": Fixtures.alsaConfig,
                   "HOME": NSTemporaryDirectory(), "XDG_CONFIG_HOME": NSTemporaryDirectory() + "musit-none-\(getpid())"]
        env.merge(environment) { $1 }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        let start = Date()
        try p.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self), seconds: Date().timeIntervalSince(start))
    }
}
