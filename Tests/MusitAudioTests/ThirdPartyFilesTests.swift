import Foundation
@testable import MusitAudio
import MusitCodecs
import MusitTestSupport
import Testing

/// Files made by other tools: mutagen's test data (scripts/make-test-audio.sh), which holds
/// the odd FLAC, Ogg and Speex files taggers meet, whole, cut short and with bytes changed.
@Suite("Third-party files: mutagen's FLAC and Ogg test data, whole, cut and damaged")
struct ThirdPartyFilesTests {
    static var files: [String] {
        let dir = Fixtures.path("mutagen")
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted().map { dir + "/" + $0 }
    }

    /// `body` on a thread of its own, within `seconds`: false when it did not return (a hang).
    static func finishes(within seconds: Double, _ body: @escaping @Sendable () -> Void) -> Bool {
        let done = DispatchSemaphore(value: 0)
        Thread {
            body()
            done.signal()
        }.start()
        return done.wait(timeout: .now() + seconds) == .success
    }

    /// What the player and the server make of a file: it plays (how many frames) or is
    /// refused (why); tags are read or not. Never a crash, never a hang.
    static func examine(_ path: String) -> (opened: String, verified: String) {
        var opened = "", verified = ""
        do {
            let source = try AudioFiles.open(path: path)
            _ = AudioFiles.readTags(path: path)
            var buffer = [Int16](repeating: 0, count: 4096 * max(1, source.format.channels))
            var frames = 0
            while true {
                let n = try buffer.withUnsafeMutableBufferPointer { try source.read(into: $0) }
                if n == 0 { break }
                frames += n
            }
            opened = "plays \(frames) frames" + (source.metadata.damage.map { ", said: \($0)" } ?? "")
        } catch let error as AudioError {
            opened = "refused: \(error.message)"
        } catch {
            opened = "refused: \(error)"
        }
        do {
            let v = try AudioFiles.verify(path: path, kind: AudioFiles.kind(path: path))
            verified = "accepted, \(v.frames) frames"
        } catch {
            verified = "refused: \(error.message)"
        }
        return (opened, verified)
    }

    @Test("every file opens and plays or is refused with a reason, and the full check decides; none crashes or hangs")
    func whole() throws {
        let files = Self.files
        try #require(files.count >= 10, "mutagen's data is there: \(files.count) files")
        for path in files {
            let result = Locked<(String, String)?>(nil)
            let finished = Self.finishes(within: 20) { result.withLock { $0 = Self.examine(path) } }
            #expect(finished, "\(path) hangs")
            let (opened, verified) = try #require(result.withLock { $0 })
            #expect(!opened.hasSuffix(": ") && !verified.hasSuffix(": "), "\(path): a reason is given")
            // A file the server accepts is one the player plays whole.
            if verified.hasPrefix("accepted") { #expect(opened.hasPrefix("plays"), "\(path): \(opened) / \(verified)") }
        }
        // Files known to be good are accepted with their exact lengths; the broken ones refused.
        let by = Dictionary(uniqueKeysWithValues: files.map { (($0 as NSString).lastPathComponent, Self.examine($0)) })
        #expect(by["silence-44-s.flac"]?.verified.hasPrefix("accepted") == true, "\(String(describing: by["silence-44-s.flac"]))")
        // Cut short in mutagen's repository (flac -t: lost sync, then the end): played in part, refused.
        #expect(by["variable-block.flac"]?.verified.hasPrefix("refused: truncated FLAC") == true,
                "\(String(describing: by["variable-block.flac"]))")
        #expect(by["variable-block.flac"]?.opened.hasPrefix("plays") == true)
        #expect(by["example.opus"]?.verified.hasPrefix("accepted") == true, "\(String(describing: by["example.opus"]))")
        #expect(by["empty.spx"]?.verified.hasPrefix("refused") == true, "Speex is not a format Musit plays")
    }

    @Test("cut at a third and with bytes changed: played in part or refused, said once, never a crash or a hang")
    func damaged() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mutagen-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var seen = 0
        for path in Self.files {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            guard bytes.count > 64 else { continue }
            let name = (path as NSString).lastPathComponent
            var flipped = bytes
            for k in 1...5 { flipped[bytes.count * k / 6] ^= 0x5A }
            for (tag, copy) in [("cut", Array(bytes.prefix(bytes.count / 3))), ("flipped", flipped)] {
                let target = "\(dir)/\(tag)-\(name)"
                try Data(copy).write(to: URL(fileURLWithPath: target))
                let result = Locked<(String, String)?>(nil)
                let finished = Self.finishes(within: 20) { result.withLock { $0 = Self.examine(target) } }
                #expect(finished, "\(tag) \(name) hangs")
                let (opened, verified) = try #require(result.withLock { $0 })
                // Accepted only when the damage missed the audio (a padding block): then it
                // decodes to the very samples of the original.
                if verified.hasPrefix("accepted") {
                    let original = try readAllPCM(try AudioFiles.open(path: path))
                    let changed = try readAllPCM(try AudioFiles.open(path: target))
                    #expect(changed == original, "\(tag) \(name) accepted by the full check, yet its audio differs")
                }
                #expect(opened.hasPrefix("plays") || opened.count > "refused: ".count, "\(tag) \(name): \(opened)")
                seen += 1
            }
        }
        #expect(seen >= 20)
    }
}
