import Foundation
@testable import MusitAudio
@testable import MusitCodecs
import MusitTestSupport
import Testing

/// Uploads and files made to cost whoever walks them (issue 23, item 5): runs of ID3v2
/// headers, tags that claim more than the file holds, tag frames that libmpg123 keeps in
/// lists it searches for every new frame, MPEG frames of every bad kind. Each is answered
/// within a second, refused with its reason or played, the same way by the upload's walk
/// and by the player; and the walk costs per megabyte what a plain MP3's does.
@Suite("Hostile input: answered at once, the same by the upload and the player")
struct HostileInputTests {
    /// The bytes of a fixture.
    static func fixture(_ name: String) -> [UInt8] {
        (try? [UInt8](Data(contentsOf: URL(fileURLWithPath: Fixtures.path(name))))) ?? []
    }

    static func synchsafe(_ n: Int) -> [UInt8] {
        [UInt8((n >> 21) & 0x7F), UInt8((n >> 14) & 0x7F), UInt8((n >> 7) & 0x7F), UInt8(n & 0x7F)]
    }

    /// An ID3v2 tag around `body`; `claiming` is the size its header says, when not the body's.
    static func tag(_ body: [UInt8], major: UInt8 = 3, flags: UInt8 = 0, claiming size: Int? = nil) -> [UInt8] {
        Array("ID3".utf8) + [major, 0, flags] + synchsafe(size ?? body.count) + body
    }

    /// An ID3v2.3 frame (v2.4 with `synchsafeSize`); `size` is the size its header says.
    static func frame(_ id: String, _ body: [UInt8], flags: UInt16 = 0, size: [UInt8]? = nil,
                      synchsafeSize: Bool = false) -> [UInt8] {
        let n = body.count
        let plain: [UInt8] = [UInt8((n >> 24) & 0xFF), UInt8((n >> 16) & 0xFF), UInt8((n >> 8) & 0xFF), UInt8(n & 0xFF)]
        let header: [UInt8] = Array(id.utf8) + (size ?? (synchsafeSize ? synchsafe(n) : plain))
        return header + [UInt8(flags >> 8), UInt8(flags & 0xFF)] + body
    }

    static func text(_ id: String, _ value: String) -> [UInt8] { frame(id, [0] + utf8(value)) }

    static func utf8(_ s: String) -> [UInt8] { Array(s.utf8) }

    /// `count` copies of `bytes`, one after another.
    static func repeated(_ bytes: [UInt8], _ count: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * count)
        for _ in 0..<count { out += bytes }
        return out
    }

    /// `count` distinct frame ids: `first` and three of [0-9A-Z].
    static func ids(_ first: Character, _ count: Int) -> [String] {
        let chars: [Character] = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")
        return (0..<count).map { (i: Int) -> String in
            let rest: [Character] = [chars[i / 1296 % 36], chars[i / 36 % 36], chars[i % 36]]
            return String([first] + rest)
        }
    }

    /// A comment frame whose description is `description`.
    static func comment(_ description: [UInt8]) -> [UInt8] {
        let head: [UInt8] = [0] + utf8("eng")
        return frame("COMM", head + description + [0, 0x63])
    }

    enum Verdict: Equatable {
        case plays
        /// Refused, with a reason whose message holds this.
        case refused(String)
    }

    enum Hostile: String, CaseIterable, CustomTestStringConvertible, Sendable {
        case chain100000, chain9, chain8, nested, overlapping
        case claims256MB, claimsPastEnd, tagAlone
        case textIDs46656, repeatedTextID, comments60000, userTexts60000, pictures40000
        case descriptions256At4KiB, descriptions257, description5KiB
        case emptyFrames100000, frameLargerThanTag, frameNotSynchsafe, byteOrderMarks300000
        case unknownEncoding, compressedAndEncrypted, unsynchronised, extendedHeaderHuge, padding500KB
        case midStreamTag, tinyFrames, freeFormat, syncEverywhere, garbageBeforeAudio

        var testDescription: String { rawValue }

        var verdict: Verdict {
            switch self {
            case .chain100000, .chain9: return .refused("more than 8 ID3v2 tags in a row")
            case .claims256MB: return .refused("at most 67108864 are read before the audio")
            case .claimsPastEnd: return .refused("the file holds")
            case .tagAlone: return .refused("holds an ID3 tag but no audio frames")
            case .textIDs46656, .repeatedTextID, .comments60000, .userTexts60000, .pictures40000, .descriptions257:
                return .refused("more than 256 text, comment and picture frames")
            case .description5KiB: return .refused("a description of more than 4096 bytes")
            case .freeFormat, .syncEverywhere, .garbageBeforeAudio: return .refused("no MPEG audio frames found")
            default: return .plays
            }
        }

        var bytes: [UInt8] {
            let mp3 = HostileInputTests.fixture("sine440.mp3")
            let empty = HostileInputTests.tag([])
            let real = tag(text("TIT2", "Hostile") + text("TPE1", "Fixture"))
            switch self {
            case .chain100000: return repeated(empty, 100_000) + mp3
            case .chain9: return real + repeated(empty, 8) + mp3
            case .chain8: return real + repeated(empty, 7) + mp3
            case .nested:
                // A tag whose body starts with another tag: data to the outer one.
                return tag(tag(text("TIT2", "Inner")) + text("TIT2", "Outer")) + mp3
            case .overlapping:
                // The first tag claims five bytes of the second's header.
                let first = text("TIT2", "First")
                return tag(first, claiming: first.count + 5) + tag(text("TALB", "Second")) + mp3
            case .claims256MB: return tag([], claiming: (1 << 28) - 1) + mp3
            case .claimsPastEnd: return tag(text("TIT2", "x"), claiming: mp3.count + 100) + mp3
            case .tagAlone: return tag(text("TIT2", "x"))
            case .textIDs46656: return tag(ids("T", 46_656).flatMap { text($0, "v") }) + mp3
            case .repeatedTextID:
                let others: [UInt8] = ids("T", 2_000).flatMap { text($0, "v") }
                return tag(others + repeated(text("TZZZ", "v"), 60_000)) + mp3
            case .comments60000: return tag((0..<60_000).flatMap { (i: Int) -> [UInt8] in comment(utf8("d\(i)")) }) + mp3
            case .userTexts60000:
                return tag((0..<60_000).flatMap { (i: Int) -> [UInt8] in
                    let body: [UInt8] = [0] + utf8("d\(i)")
                    return frame("TXXX", body + [0, 0x76])
                }) + mp3
            case .pictures40000:
                return tag((0..<40_000).flatMap { (i: Int) -> [UInt8] in
                    let mime: [UInt8] = [0] + utf8("image/png") + [0, 3]
                    return frame("APIC", mime + utf8("d\(i)") + [0, 0x50])
                }) + mp3
            case .descriptions256At4KiB, .descriptions257:
                // Descriptions that libmpg123 compares to their last byte, each with every other.
                let n = self == .descriptions257 ? 257 : 256
                let prefix = [UInt8](repeating: 0x78, count: 4088)
                return tag((0..<n).flatMap { i -> [UInt8] in
                    let digits = Array(String(i).utf8)
                    return comment(prefix + [UInt8](repeating: 0x30, count: 8 - digits.count) + digits)
                }) + mp3
            case .description5KiB: return tag(comment([UInt8](repeating: 0x78, count: 5000))) + mp3
            case .emptyFrames100000:
                return tag(text("TIT2", "x") + repeated(frame("ZERO", []), 100_000)) + mp3
            case .frameLargerThanTag: return tag(frame("TIT2", [0] + utf8("title"), size: [0x40, 0, 0, 0])) + mp3
            case .frameNotSynchsafe:
                return tag(frame("TIT2", [0] + utf8("title"), size: [0, 0x80, 0, 6]), major: 4) + mp3
            case .byteOrderMarks300000:
                let marks: [UInt8] = [1] + repeated([0xFF, 0xFE], 300_000)
                return tag(frame("TIT2", marks + [0x61, 0])) + mp3
            case .unknownEncoding: return tag(frame("TIT2", [7] + utf8("bad encoding"))) + mp3
            case .compressedAndEncrypted:
                let compressed = frame("TIT2", [0] + utf8("compressed"), flags: 0x0080)
                return tag(compressed + frame("TPE1", [0] + utf8("encrypted"), flags: 0x0040)) + mp3
            case .unsynchronised:
                let mime: [UInt8] = [0] + utf8("image/png") + [0, 3, 0]
                let picture = frame("APIC", mime + repeated([0xFF, 0], 200_000))
                return tag(text("TIT2", "Unsynced") + picture, flags: 0x80) + mp3
            case .extendedHeaderHuge: return tag([0x7F, 0xFF, 0xFF, 0xFF, 0, 0] + text("TIT2", "x"), flags: 0x40) + mp3
            case .padding500KB: return tag([UInt8](repeating: 0, count: 500_000)) + mp3
            case .midStreamTag:
                // Half a file without an Info header (the walk counts its frames to where the
                // tag is), 30,000 comments, then the rest: libmpg123 would parse them as it
                // plays on.
                let plain = HostileInputTests.fixture("durations/no_info_tag.mp3")
                // Cut at a real frame boundary, walked header by header from the first
                // frame: a search for the sync pattern can land inside a frame's data.
                var cut = 0
                while cut + 4 <= plain.count, cut < 80_000,
                      let header = MP3FrameHeader(plain[cut], plain[cut + 1], plain[cut + 2], plain[cut + 3]) {
                    cut += header.frameLength
                }
                precondition(cut >= 80_000, "no_info_tag.mp3 is a plain run of frames from its first byte")
                let comments = tag((0..<30_000).flatMap { (i: Int) -> [UInt8] in comment(utf8("d\(i)")) })
                return real + Array(plain[..<cut]) + comments + Array(plain[cut...])
            case .tinyFrames:
                // 43,000 valid frames of 24 bytes (MPEG-2 layer III, 8 kbps, 24 kHz) of silence.
                let silence: [UInt8] = [0xFF, 0xF3, 0x14, 0xC4] + [UInt8](repeating: 0, count: 20)
                return real + repeated(silence, 43_000)
            case .freeFormat: return real + repeated([0xFF, 0xFB, 0x00, 0x44], 100_000)
            case .syncEverywhere: return real + repeated([0xFF, 0xFB, 0x90, 0x64], 250_000)
            case .garbageBeforeAudio: return real + [UInt8](repeating: 0xFF, count: 70_000) + mp3
            }
        }
    }

    /// What the server makes of `bytes` arriving in 64 KiB pieces: the walk's summary and
    /// the tags libmpg123 reads from its head, or the reason it is refused.
    static func upload(_ bytes: [UInt8]) -> Result<TrackMetadata, AudioError.Reason> {
        var scanner = MP3Scanner()
        bytes.withUnsafeBytes { b in
            for start in stride(from: 0, to: b.count, by: 64 * 1024) {
                scanner.consume(UnsafeRawBufferPointer(rebasing: b[start..<min(start + 64 * 1024, b.count)]))
            }
        }
        do throws(AudioError.Reason) {
            return .success(try scanner.finish().readMetadata())
        } catch {
            return .failure(error)
        }
    }

    static func verdict(_ result: Result<TrackMetadata, AudioError.Reason>) -> String {
        switch result {
        case .success: return "plays"
        case .failure(let reason): return AudioError("x", reason).message
        }
    }

    /// What the player makes of the file at `path`: "plays", or why not. `toTheEnd`
    /// decodes it all, past any tag further on.
    static func play(_ path: String, toTheEnd: Bool) -> String {
        let buffer = UnsafeMutableBufferPointer<Int16>.allocate(capacity: 16384)
        defer { buffer.deallocate() }
        do {
            let track = try FileTrack(path: path)
            if toTheEnd { while try track.read(into: buffer) > 0 {} }
            return "plays"
        } catch {
            return error.message
        }
    }

    static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    @Test("each hostile input is answered within 1 s: refused with its reason, or played, by the upload and the player alike",
          arguments: Hostile.allCases)
    func answeredAtOnce(_ hostile: Hostile) throws {
        let bytes = hostile.bytes
        #expect(bytes.count > 10)
        let clock = ContinuousClock()
        var uploaded: Result<TrackMetadata, AudioError.Reason> = .failure(.empty)
        let uploadTime = clock.measure { uploaded = Self.upload(bytes) }
        #expect(Self.seconds(uploadTime) < 1, "\(hostile): the upload's walk took \(uploadTime)")
        switch hostile.verdict {
        case .plays:
            #expect(Self.verdict(uploaded) == "plays", "\(hostile): \(Self.verdict(uploaded))")
        case .refused(let why):
            #expect(Self.verdict(uploaded).contains(why), "\(hostile): \(Self.verdict(uploaded))")
        }

        // The player, from a file: the same verdict, as fast; and what plays decodes past
        // any tag further on without parsing it (the mid-stream tag).
        let path = NSTemporaryDirectory() + "musit-hostile-\(UUID().uuidString).mp3"
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        var opened = ""
        let openTime = clock.measure { opened = Self.play(path, toTheEnd: hostile == .midStreamTag) }
        #expect(Self.seconds(openTime) < 1, "\(hostile): the player took \(openTime)")
        #expect(opened == Self.verdict(uploaded), "\(hostile): one rule for both: the player says \(opened)")
    }

    @Test("the walk of a hostile upload costs per megabyte at most twice what a plain MP3's does")
    func costPerMegabyte() {
        // A plain MP3 of about the hostile files' size: a 160 kbps song three times over.
        let long = Self.fixture("long20.mp3")
        let plain = long + long + long
        let clock = ContinuousClock()
        /// The fastest of several walks, per megabyte: the cost, not the machine's noise.
        func perMegabyte(_ bytes: [UInt8]) -> Double {
            var best = Double.infinity
            for _ in 0..<7 {
                let t = clock.measure { _ = Self.upload(bytes) }
                best = min(best, Self.seconds(t))
            }
            return best / (Double(bytes.count) / 1_048_576)
        }
        #expect(Self.verdict(Self.upload(plain)) == "plays")
        let base = perMegabyte(plain)
        // Inputs of a megabyte whose tags claim what no file holds: what they claim must not
        // make the walk read a byte more than once, or at all past the point of refusal.
        // (Inputs the walk must read through, tag frame by tag frame, cost more per
        // megabyte than a plain MP3's walk, which steps over hundreds of bytes a frame; each
        // is answered within a second above, and its cost is linear in its bytes.)
        let mp3 = Self.fixture("sine440.mp3")
        let megabyteOfAudio = Self.repeated(mp3, 8)
        let cases: [(String, [UInt8])] = [
            ("100,000 chained ID3v2 headers", Hostile.chain100000.bytes),
            ("nine chained tags before a megabyte of audio", Self.repeated(Self.tag([]), 9) + megabyteOfAudio),
            ("a tag claiming 256 MB before a megabyte of audio", Self.tag([], claiming: (1 << 28) - 1) + megabyteOfAudio),
            ("a tag claiming 32 MB before a megabyte of audio", Self.tag([], claiming: 32 << 20) + megabyteOfAudio),
        ]
        for (what, bytes) in cases {
            let cost = perMegabyte(bytes)
            #expect(cost <= 2 * base, "\(what): \(cost * 1000) ms/MB against \(base * 1000) ms/MB for a plain MP3")
        }
    }

    @Test("the walk is the same whatever pieces the bytes arrive in, down to one byte")
    func anyPieces() throws {
        for name in ["sine440.mp3", "tag_v24.mp3", "durations/lame_vbr.mp3", "durations/mpeg2_mono.mp3"] {
            let bytes = Self.fixture(name)
            let whole = try bytes.withUnsafeBytes { try MP3Scanner.scan($0) }
            for size in [1, 2, 3, 5] {
                var scanner = MP3Scanner()
                bytes.withUnsafeBytes { b in
                    for start in stride(from: 0, to: b.count, by: size) {
                        scanner.consume(UnsafeRawBufferPointer(rebasing: b[start..<min(start + size, b.count)]))
                    }
                }
                let pieces = try scanner.finish()
                #expect(pieces == whole, "\(name) in pieces of \(size) bytes: \(pieces.samples) samples, whole \(whole.samples)")
            }
        }
    }
}
