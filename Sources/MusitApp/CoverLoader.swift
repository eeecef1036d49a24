import Foundation
import MusitArt
import MusitClient
import MusitImage
import MusitViewModel
import Synchronization

/// Covers decoded, measured and scaled on their own queue (never the UI thread or Swift's
/// cooperative pool); the last few pictures are kept for rescaling after a resize.
final class CoverLoader: Sendable {
    private let queue = DispatchQueue(label: "musit-covers", qos: .utility)
    private let pictures = Mutex<[(key: String, picture: Picture)]>([])
    private let client: APIClient?
    private let post: @Sendable (Action) -> Void
    static let kept = 8
    static let side = 256

    init(client: APIClient?, post: @escaping @Sendable (Action) -> Void) {
        self.client = client
        self.post = post
    }

    /// Works out the artwork of the track at `key`: its embedded picture, or for a server
    /// song the server's cover; the colours from the picture, else from the album's name.
    func artwork(key: String, embedded: [UInt8]?, album: String) {
        if embedded == nil, let id = SongLocation.id(of: key), let client {
            Task {
                let bytes = try? await client.cover(song: id)
                self.queue.async { self.analyse(key: key, bytes: bytes ?? nil, album: album) }
            }
        } else {
            queue.async { self.analyse(key: key, bytes: embedded, album: album) }
        }
    }

    private func analyse(key: String, bytes: [UInt8]?, album: String) {
        // At most `side` pixels a side: cells need far fewer, and the kitty protocol sends
        // what is kept, for the terminal to scale.
        let picture = bytes.flatMap { try? ImageDecoder.decode($0) }.map { p in
            let scale = min(1, Double(Self.side) / Double(max(p.width, p.height)))
            return p.scaled(width: max(1, Int(Double(p.width) * scale)), height: max(1, Int(Double(p.height) * scale)))
        }
        if let picture {
            pictures.withLock { list in
                list.removeAll { $0.key == key }
                list.append((key, picture))
                if list.count > Self.kept { list.removeFirst() }
            }
        }
        let seeds = picture.map { Ambient.seeds(from: $0) } ?? Ambient.seeds(fromName: album)
        post(.artwork(key: key, seeds: seeds, hasPicture: picture != nil))
    }

    /// The decoded picture of `key`, if kept.
    func picture(_ key: String) -> Picture? {
        pictures.withLock { $0.last { $0.key == key }?.picture }
    }

    func scale(_ request: CoverRequest) {
        queue.async {
            guard let picture = self.picture(request.key) else { return }
            let fit = CoverCells.fit(width: picture.width, height: picture.height, maxColumns: request.columns, maxRows: request.rows)
            self.post(.cover(CoverCells(key: request.key, picture: picture, columns: fit.columns, rows: fit.rows)))
        }
    }
}
