/// A failure that names the track it concerns and says what was wrong in words a user understands.
public struct AudioError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Error, Equatable, Sendable {
        case notFound
        case isDirectory
        case unreadable(String)
        case empty
        case noAudioFrames(tagOnly: Bool)
        /// MPEG frames, but none that play a sample (an Info frame alone, or frames the
        /// encoder's delay and padding cancel out).
        case noSamples
        case otherFormat(String)
        case decode(String)
        case truncated(playedSeconds: Double, expectedSeconds: Double, format: String = "MP3")
        case device(String)
        /// A stream has no bytes yet: not an error, the player waits ("buffering").
        case stalled
    }

    public let location: String
    public let reason: Reason

    public init(_ location: String, _ reason: Reason) {
        self.location = location
        self.reason = reason
    }

    public var message: String {
        switch reason {
        case .notFound: return "no such file"
        case .isDirectory: return "is a directory, not an audio file"
        case .unreadable(let why): return "cannot read: \(why)"
        case .empty: return "empty file"
        case .noAudioFrames(let tagOnly):
            return tagOnly ? "holds an ID3 tag but no audio frames" : "not an MP3: no MPEG audio frames found"
        case .noSamples: return "no audio to play: its MPEG frames hold no samples"
        case .otherFormat(let what): return "not an MP3: looks like \(what)"
        case .decode(let why): return "cannot decode: \(why)"
        case .truncated(let played, let expected, let format):
            return "truncated \(format): audio ends at \(formatSeconds(played)) of \(formatSeconds(expected))"
        case .device(let why): return "audio device: \(why)"
        case .stalled: return "buffering"
        }
    }

    public var description: String { "\(location): \(message)" }
}

func formatSeconds(_ s: Double) -> String {
    String(format: "%.1f s", s)
}

#if canImport(Glibc)
import Glibc
#endif
import Foundation

func errnoString(_ code: Int32) -> String {
    String(cString: strerror(code))
}
