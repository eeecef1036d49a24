import Foundation

/// The PCM layout Musit writes: interleaved signed little-endian samples, 16 bits (S16_LE),
/// or 32 (S32_LE) for sources with wider samples (24-bit FLAC, left-justified), which go to
/// the device as they are when it takes them (`WidePCMSource`).
public struct PCMFormat: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var sampleRate: Int
    public var channels: Int
    /// Bits of each sample's container: 16 or 32.
    public var sampleBits: Int

    public init(sampleRate: Int, channels: Int, sampleBits: Int = 16) {
        self.sampleRate = sampleRate
        self.channels = channels
        self.sampleBits = sampleBits
    }

    public static let cd = PCMFormat(sampleRate: 44100, channels: 2)
    public var bytesPerFrame: Int { channels * sampleBits / 8 }
    public var description: String { "\(sampleRate) Hz, \(channels) ch, S\(sampleBits)_LE" }
}

/// An embedded picture (ID3v2 APIC).
public struct CoverArt: Equatable, Sendable {
    public var mimeType: String
    public var pictureType: Int
    public var description: String
    public var data: [UInt8]
}

/// What a track says about itself, from its ID3v2 or ID3v1 tag and its frames.
public struct TrackMetadata: Equatable, Sendable {
    public var title: String?
    public var artist: String?
    public var album: String?
    public var trackNumber: Int?
    public var year: Int?
    /// Frames (samples per channel) after gapless trimming; estimated when the file has no Info tag.
    public var totalFrames: Int64?
    public var format: PCMFormat
    public var cover: CoverArt?
    /// Why the file plays shorter than it should (a half-downloaded file: "truncated MP3:
    /// audio ends at 4.9 s of 10.0 s"); nil when it is whole. It plays what is there.
    public var damage: String?
    /// ReplayGain (or Opus's R128) values from the tags.
    public var gains = ReplayGain()

    public init(title: String? = nil, artist: String? = nil, album: String? = nil, trackNumber: Int? = nil,
                year: Int? = nil, totalFrames: Int64? = nil, format: PCMFormat = .cd, cover: CoverArt? = nil) {
        self.title = title
        self.artist = artist
        self.album = album
        self.trackNumber = trackNumber
        self.year = year
        self.totalFrames = totalFrames
        self.format = format
        self.cover = cover
    }

    public var duration: Double? {
        totalFrames.map { Double($0) / Double(format.sampleRate) }
    }

    /// A one-line label: "Artist – Title", falling back to the file name.
    public func displayTitle(location: String) -> String {
        let name = title ?? (location as NSString).lastPathComponent
        if let artist, !artist.isEmpty { return "\(artist) – \(name)" }
        return name
    }
}

/// ID3v1/v1.1: 128 bytes at the end of the file, Latin-1 text.
enum ID3v1 {
    static func parse(_ tag: [UInt8]) -> TrackMetadata? {
        guard tag.count == 128, tag[0] == 0x54, tag[1] == 0x41, tag[2] == 0x47 else { return nil }
        func text(_ range: Range<Int>) -> String? {
            var bytes = Array(tag[range])
            if let nul = bytes.firstIndex(of: 0) { bytes = Array(bytes[..<nul]) }
            let s = String(bytes.map { Character(Unicode.Scalar($0)) })
                .trimmingCharacters(in: .whitespaces)
            return s.isEmpty ? nil : s
        }
        var meta = TrackMetadata()
        meta.title = text(3..<33)
        meta.artist = text(33..<63)
        meta.album = text(63..<93)
        meta.year = text(93..<97).flatMap { Int($0) }
        if tag[125] == 0, tag[126] != 0 { meta.trackNumber = Int(tag[126]) }
        return meta
    }
}

/// Parses the leading number of "3", "3/12" or "2024-05-01".
func leadingInt(_ s: String?) -> Int? {
    guard let s else { return nil }
    let digits = s.trimmingCharacters(in: .whitespaces).prefix { $0.isASCII && $0.isNumber }
    return Int(digits)
}

/// How loud to play tracks relative to each other (ReplayGain 2.0): off, each track at its
/// own level, or albums at the album's level (with the track's where there is none).
public enum ReplayGainMode: String, CaseIterable, Sendable {
    case off, track, album
}

/// A track's ReplayGain values: gains in dB, peaks as a fraction of full scale.
public struct ReplayGain: Equatable, Sendable {
    public var trackGain: Double?
    public var trackPeak: Double?
    public var albumGain: Double?
    public var albumPeak: Double?

    public init(trackGain: Double? = nil, trackPeak: Double? = nil, albumGain: Double? = nil, albumPeak: Double? = nil) {
        self.trackGain = trackGain
        self.trackPeak = trackPeak
        self.albumGain = albumGain
        self.albumPeak = albumPeak
    }

    /// The factor samples are multiplied by in `mode`: 1 when off or untagged; never so much
    /// that the tagged peak would clip.
    public func factor(_ mode: ReplayGainMode) -> Double {
        let chosen: (gain: Double?, peak: Double?)
        switch mode {
        case .off: return 1
        case .track: chosen = (trackGain, trackPeak)
        case .album: chosen = albumGain != nil ? (albumGain, albumPeak) : (trackGain, trackPeak)
        }
        guard let gain = chosen.gain, gain.isFinite else { return 1 }
        var factor = pow(10, max(-60, min(24, gain)) / 20)
        if let peak = chosen.peak, peak > 0, factor * peak > 1 { factor = 1 / peak }
        return factor
    }

    /// Reads one tag; `name` as the tag names it (any case), `value` its text.
    /// REPLAYGAIN_TRACK_GAIN "-6.02 dB", REPLAYGAIN_*_PEAK "0.98", and Opus's
    /// R128_TRACK_GAIN / R128_ALBUM_GAIN: a Q7.8 number of dB (RFC 7845 5.2.1) towards
    /// EBU R128's -23 LUFS, 5 dB below ReplayGain 2.0's -18 LUFS: 5 dB are added, so an Opus
    /// plays as loud as an MP3 or FLAC of the same loudness in one queue.
    mutating func read(_ name: String, _ value: String) {
        let number = Double(value.trimmingCharacters(in: .whitespaces).prefix { "+-.0123456789eE".contains($0) })
        switch name.uppercased() {
        case "REPLAYGAIN_TRACK_GAIN": trackGain = number
        case "REPLAYGAIN_TRACK_PEAK": trackPeak = number
        case "REPLAYGAIN_ALBUM_GAIN": albumGain = number
        case "REPLAYGAIN_ALBUM_PEAK": albumPeak = number
        case "R128_TRACK_GAIN": if let q = Int(value.trimmingCharacters(in: .whitespaces)) { trackGain = Double(q) / 256 + 5 }
        case "R128_ALBUM_GAIN": if let q = Int(value.trimmingCharacters(in: .whitespaces)) { albumGain = Double(q) / 256 + 5 }
        default: break
        }
    }
}
