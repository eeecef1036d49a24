import Foundation
import MusitViewModel
import Synchronization

/// Local files and folders as the queue's paged data source. Folders are scanned on a
/// background queue; pages (filtered or not) are cut on another, so the UI never waits.
public final class LocalLibrary: QueueDataSource, Sendable {
    public struct Entry: Equatable, Sendable {
        public let path: String
        public let title: String
        public let folder: String
    }

    public enum Event: Sendable {
        /// Files were added: the whole list now has `total` entries; `scanning` while more may come.
        case changed(total: Int, scanning: Bool, added: [Entry])
        case progress(ScanProgress)
        case page(QueuePage)
        /// A path given to `add` could not be used.
        case problem(String)
    }

    private struct State {
        var entries: [Entry] = []
        var scansRunning = 0
        var found = 0
        var skipped = 0
        var filterCache: (filter: String, version: Int, rows: [Int])?
        var version = 0
    }

    private let state = Mutex(State())
    private let scanQueue = DispatchQueue(label: "musit.library.scan")
    private let pageQueue = DispatchQueue(label: "musit.library.pages")
    private let onEvent: @Sendable (Event) -> Void

    public init(onEvent: @escaping @Sendable (Event) -> Void) {
        self.onEvent = onEvent
    }

    public var count: Int { state.withLock { $0.entries.count } }

    public func entry(at index: Int) -> Entry? {
        state.withLock { $0.entries.indices.contains(index) ? $0.entries[index] : nil }
    }

    /// Adds files and folders (scanned recursively for .mp3 files) in the background.
    public func add(_ paths: [String]) {
        state.withLock { $0.scansRunning += 1 }
        scanQueue.async { [self] in
            for path in paths { scan(path) }
            let (total, progress) = state.withLock { s -> (Int, ScanProgress) in
                s.scansRunning -= 1
                return (s.entries.count, ScanProgress(found: s.found, skipped: s.skipped, finished: s.scansRunning == 0))
            }
            onEvent(.changed(total: total, scanning: !progress.finished, added: []))
            onEvent(.progress(progress))
        }
    }

    /// Scans and adds synchronously (for callers already off the UI thread, and tests).
    public func addNow(_ paths: [String]) {
        for path in paths { scan(path) }
    }

    private func scan(_ path: String) {
        let expanded = (path as NSString).expandingTildeInPath
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: expanded, isDirectory: &isDir) else {
            onEvent(.problem("\(path): no such file or folder"))
            return
        }
        if !isDir.boolValue {
            // A file named on its own is taken as is: the player reports it if it is not an MP3.
            append([expanded], skipped: 0)
            return
        }
        guard let walker = FileManager.default.enumerator(atPath: expanded) else {
            onEvent(.problem("\(path): cannot read the folder"))
            return
        }
        var batch: [String] = []
        var skipped = 0
        var lastReport = Date()
        var all: [String] = []
        while let relative = walker.nextObject() as? String {
            let full = expanded + "/" + relative
            guard relative.lowercased().hasSuffix(".mp3") else {
                if walker.fileAttributes?[.type] as? FileAttributeType != .typeDirectory { skipped += 1 }
                continue
            }
            var st = stat()
            if stat(full, &st) != 0 || (st.st_mode & S_IFMT) != S_IFREG || access(full, R_OK) != 0 {
                skipped += 1
                continue
            }
            all.append(full)
            if Date().timeIntervalSince(lastReport) > 0.1 {
                lastReport = Date()
                let found = state.withLock { $0.found + all.count }
                onEvent(.progress(ScanProgress(found: found, skipped: skipped, finished: false)))
            }
        }
        // Folder order: paths sorted, so albums and track numbers line up.
        batch = all.sorted { $0.localizedStandardCompare($1) == .orderedAscending }
        append(batch, skipped: skipped)
    }

    private func append(_ paths: [String], skipped: Int) {
        let entries = paths.map { p -> Entry in
            let url = URL(fileURLWithPath: p)
            return Entry(path: p, title: url.deletingPathExtension().lastPathComponent,
                         folder: url.deletingLastPathComponent().lastPathComponent)
        }
        let (total, progress) = state.withLock { s -> (Int, ScanProgress) in
            s.entries += entries
            s.found += entries.count
            s.skipped += skipped
            s.version += 1
            return (s.entries.count, ScanProgress(found: s.found, skipped: s.skipped, finished: false))
        }
        onEvent(.changed(total: total, scanning: true, added: entries))
        onEvent(.progress(progress))
    }

    /// Cuts a page on the page queue and delivers it as an event.
    public func request(_ request: QueuePageRequest) {
        pageQueue.async { [self] in
            onEvent(.page(page(for: request)))
        }
    }

    /// The page itself, computed on the caller's thread.
    public func page(for request: QueuePageRequest) -> QueuePage {
        state.withLock { s in
            let scanning = s.scansRunning > 0
            let rows: [Int]
            if request.filter.isEmpty {
                let end = min(s.entries.count, request.offset + request.limit)
                let items = request.offset < end
                    ? (request.offset..<end).map { Self.item(s.entries[$0], index: $0) } : []
                return QueuePage(request: request, items: items, total: s.entries.count,
                                 hasMore: scanning || end < s.entries.count)
            }
            if let cache = s.filterCache, cache.filter == request.filter, cache.version == s.version {
                rows = cache.rows
            } else {
                let needle = request.filter.lowercased()
                rows = s.entries.indices.filter {
                    s.entries[$0].title.lowercased().contains(needle) || s.entries[$0].folder.lowercased().contains(needle)
                }
                s.filterCache = (request.filter, s.version, rows)
            }
            let end = min(rows.count, request.offset + request.limit)
            let items = request.offset < end ? (request.offset..<end).map { Self.item(s.entries[rows[$0]], index: rows[$0]) } : []
            return QueuePage(request: request, items: items, total: rows.count, hasMore: end < rows.count)
        }
    }

    static func item(_ e: Entry, index: Int) -> QueueItem {
        QueueItem(index: index, title: e.title, detail: e.folder)
    }
}
