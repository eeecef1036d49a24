import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

/// The server's full check of an upload (`AudioFiles.verify`): whole files pass with their
/// exact length, and every way a file can be broken is refused with its reason.
@Suite("Verification: whole files pass, damaged ones are refused with the reason")
struct VerificationTests {
    /// A copy of `name` changed by `edit`, in a fresh directory.
    func copy(_ name: String, _ edit: (inout [UInt8]) -> Void) throws -> String {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name))))
        edit(&bytes)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("verify-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent(name).path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    func refusal(_ path: String, _ kind: AudioFiles.Kind) -> String? {
        do {
            _ = try AudioFiles.verify(path: path, kind: kind)
            return nil
        } catch {
            return error.message
        }
    }

    @Test("whole files verify with the length, rate, channels and depth their decoders play",
          arguments: [("sweep.flac", AudioFiles.Kind.flac, 264_600, 44_100, 16 as Int?),
                      ("hires96.flac", .flac, -1, 96_000, 24),
                      ("sweep_a.ogg", .vorbis, -1, 44_100, nil),
                      ("sweep48_a.opus", .opus, -1, 48_000, nil)])
    func wholeFiles(name: String, kind: AudioFiles.Kind, frames: Int, rate: Int, depth: Int?) throws {
        let v = try AudioFiles.verify(path: Fixtures.path(name), kind: kind)
        #expect(AudioFiles.kind(path: Fixtures.path(name)) == kind)
        // The reference decoders' output where the fixtures keep it (flac -d, oggdec -R,
        // opusdec --no-dither), else the count the player reads.
        let reference = FileManager.default.fileExists(atPath: Fixtures.path(name) + ".raw")
            ? (try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name) + ".raw"))).count / (2 * v.channels)
            : frames >= 0 ? frames : try readAllPCM(try AudioFiles.open(path: Fixtures.path(name))).count / v.channels
        #expect(v.frames == Int64(reference))
        #expect(v.sampleRate == rate && v.channels == 2 && v.bitDepth == depth)
    }

    @Test("a file cut short, with bytes after its end, or with one byte changed is refused, saying so",
          arguments: [("sweep.flac", AudioFiles.Kind.flac), ("sweep_a.ogg", .vorbis), ("sweep48_a.opus", .opus)])
    func damaged(name: String, kind: AudioFiles.Kind) throws {
        let cut = try copy(name) { $0.removeLast($0.count * 2 / 5) }
        let junk = try copy(name) { $0 += (0..<3000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) } }
        let flipped = try copy(name) { $0[$0.count / 2] ^= 0x10 }
        let cutSays = try #require(refusal(cut, kind), "a cut \(name) was accepted")
        let junkSays = try #require(refusal(junk, kind), "\(name) with junk after it was accepted")
        let flipSays = try #require(refusal(flipped, kind), "\(name) with a changed byte was accepted")
        switch kind {
        case .flac:
            #expect(cutSays.contains("truncated FLAC"), "\(cutSays)")
            #expect(junkSays.contains("damaged FLAC"), "\(junkSays)")
            #expect(flipSays.contains("damaged FLAC"), "\(flipSays)")
        default:
            #expect(cutSays.contains("cut inside a page") || cutSays.contains("cut short"), "\(cutSays)")
            #expect(junkSays.contains("bytes that are not Ogg pages"), "\(junkSays)")
            #expect(flipSays.contains("checksum does not match"), "\(flipSays)")
        }
        // Cut at a page boundary: every page checks out, but the last one never came.
        if kind != .flac {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name))))
            let pages = (0..<(bytes.count - 4)).filter { bytes[$0..<($0 + 4)].elementsEqual("OggS".utf8) }
            let boundary = pages[pages.count / 2]
            let atPage = try copy(name) { $0.removeLast($0.count - boundary) }
            #expect(refusal(atPage, kind)?.contains("ends without its last page") == true)
        }
    }

    @Test("a FLAC with an ID3v1 tag after its last frame is refused: bytes after the audio, counted")
    func flacTrailingTag() throws {
        let tagged = try copy("sweep.flac") { $0 += Array("TAG".utf8) + [UInt8](repeating: 0x20, count: 125) }
        let said = refusal(tagged, .flac)
        #expect(said?.contains("128 bytes after the last frame") == true || said?.contains("damaged FLAC") == true, "\(said ?? "accepted")")
        #expect(said != nil)
    }

    @Test("a FLAC whose frames are whole but whose MD5 signature differs is refused")
    func flacSignature() throws {
        // STREAMINFO follows "fLaC" and its 4-byte block header; its MD5 is the last 16 of its 34 bytes.
        let wrong = try copy("sweep.flac") { $0[4 + 4 + 18 + 5] ^= 0xFF }
        #expect(refusal(wrong, .flac)?.contains("does not match its MD5 signature") == true)
        let v = try AudioFiles.verify(path: Fixtures.path("sweep.flac"), kind: .flac)
        #expect(v.frames == 264_600)
    }
}
