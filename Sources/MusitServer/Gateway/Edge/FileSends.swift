import Foundation
import HTTPTypes
import NIOCore
import Synchronization

/// Whole files and large ranges go out with sendfile(2), from the descriptor the route
/// opened before it answered.
///
/// Hummingbird's response bodies are byte buffers, and its HTTP codec passes nothing else;
/// NIO's own encoder, below it, passes a `FileRegion` through to the socket. So the route
/// answers with the length and an empty body, and names the file in a private header;
/// `ConnectionGuard`, which sits below the codec, takes the header off and writes the region
/// after the head.
///
/// Why the descriptor is opened by the route: a song deleted while it is being sent must
/// not cut the answer. The file is open before the head promises its length, and an
/// unlinked file stays readable through an open descriptor, so the answer is either a 404
/// (the song was gone first) or whole.
enum FileSends {
    static let header = HTTPField.Name("X-Musit-Send-File")!

    struct Pending: Sendable {
        let file: MediaCache.OpenFile
        let offset: Int
        let length: Int
        let at: ContinuousClock.Instant
    }

    private static let table = Mutex<(next: UInt64, entries: [UInt64: Pending])>((0, [:]))
    /// An answer that never reached its connection (the client left, or a precondition
    /// replaced it) leaves its entry behind: past this many, entries older than a minute go.
    static let sweepAbove = 1024

    /// Registers `length` bytes of `file` from `offset`; returns the header's value.
    static func add(_ file: MediaCache.OpenFile, offset: Int, length: Int) -> String {
        let now = ContinuousClock.now
        return table.withLock { t in
            if t.entries.count >= sweepAbove {
                t.entries = t.entries.filter { now - $0.value.at < .seconds(60) }
            }
            t.next += 1
            t.entries[t.next] = Pending(file: file, offset: offset, length: length, at: now)
            return String(t.next)
        }
    }

    static func take(_ value: String) -> Pending? {
        guard let id = UInt64(value) else { return nil }
        return table.withLock { $0.entries.removeValue(forKey: id) }
    }

    /// Entries waiting for their connection (for tests).
    static var waiting: Int { table.withLock { $0.entries.count } }

    /// The region to write after the head, with the handle to close once it is written.
    static func region(_ pending: Pending) -> (FileRegion, NIOFileHandle)? {
        let fd = dup(pending.file.fd)
        guard fd >= 0 else { return nil }
        let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: fd)
        return (FileRegion(fileHandle: handle, readerIndex: pending.offset, endIndex: pending.offset + pending.length), handle)
    }
}
