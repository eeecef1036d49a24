import Foundation

/// The PCM layout Musit writes: interleaved signed 16-bit little-endian samples.
public struct PCMFormat: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var sampleRate: Int
    public var channels: Int

    public init(sampleRate: Int, channels: Int) {
        self.sampleRate = sampleRate
        self.channels = channels
    }

    public static let cd = PCMFormat(sampleRate: 44100, channels: 2)
    public var bytesPerFrame: Int { channels * 2 }
    public var description: String { "\(sampleRate) Hz, \(channels) ch, S16_LE" }
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
