import Foundation
import MusitViewModel
import Synchronization

/// Local files and folders as the queue's paged data source. Folders are scanned on a
/// background queue; pages (filtered or not) are cut on another, so the UI never waits.
/// After a scan, the files' tags are read on a third (or found in the cache, by path, size
/// and modification time) and the rows turn from file names into titles and artists.
public final class LocalLibrary: QueueDataSource, Sendable {
    /// Names a folder walk takes as audio: the formats the player decodes (`AudioFiles` tells
    /// them apart by their bytes when it opens them).
    public static let audioExtensions: Set<String> = ["mp3", "flac", "ogg", "oga", "opus"]

    public static func isAudio(_ name: String) -> Bool {
        guard let dot = name.lastIndex(of: ".") else { return false }
        return audioExtensions.contains(name[name.index(after: dot)...].lowercased())
    }

    /// What the queue shows of a file's tags.
    public struct Tags: Codable, Equatable, Sendable {
        public var title: String?
        public var artist: String?
        public var album: String?
        public var track: Int?

        public init(title: String? = nil, artist: String? = nil, album: String? = nil, track: Int? = nil) {
            self.title = title
            self.artist = artist
            self.album = album
            self.track = track
        }
    }

    public struct Entry: Equatable, Sendable {
        public let path: String
        /// The file's name without its extension, and its folder's name.
        public let name: String
        public let folder: String
        /// Read after the scan; nil until then, or when the file has none.
        public var tags: Tags? {
            didSet { albumKey = tags?.album.flatMap { $0.isEmpty ? nil : $0.folding(options: [.caseInsensitive, .diacriticInsensitive], locale: nil) } }
        }
        /// The album as the album order compares it (case and accents aside), worked out
        /// once when the tags arrive rather than at every sort.
        public private(set) var albumKey: String?

        /// The tags' title, else the file's name.
        public var title: String { tags?.title.flatMap { $0.isEmpty ? nil : $0 } ?? name }
        /// "Artist · Album" from the tags, else the folder.
        public var detail: String {
            let parts = [tags?.artist, tags?.album].compactMap { $0?.isEmpty == false ? $0 : nil }
            return parts.isEmpty ? folder : parts.joined(separator: " · ")
        }
    }

    public enum Event: Sendable {
        /// Files were added: the whole list now has `total` entries; `scanning` while more may come.
        case changed(total: Int, scanning: Bool, added: [Entry])
        case progress(ScanProgress)
        case page(QueuePage)
        /// A path given to `add` could not be used.
        case problem(String)
        /// Tags were read for some rows: pages already shown are stale.
        case tagsRead(total: Int, scanning: Bool)
    }

    private struct State {
        var entries: [Entry] = []
        var scansRunning = 0
        var found = 0
        var skipped = 0
        var filterCache: (filter: String, sort: QueueSort, version: Int, rows: [Int])?
        var sortCache: (sort: QueueSort, version: Int, rows: [Int])?
        var version = 0
    }

    private let state = Mutex(State())
    private let scanQueue = DispatchQueue(label: "musit.library.scan")
    private let pageQueue = DispatchQueue(label: "musit.library.pages")
    private let tagQueue = DispatchQueue(label: "musit.library.tags", qos: .utility)
    private let onEvent: @Sendable (Event) -> Void
    private let readTags: (@Sendable (String) -> Tags?)?
    private let cache: TagCache?
    /// Rows whose tags are read (in order, from the first).
    private let tagged = Mutex(0)

    /// `readTags`: how to read a file's tags (nil: rows keep file names). `cacheFile`: where
    /// tags read before are kept, by path, size and modification time.
    public init(readTags: (@Sendable (String) -> Tags?)? = nil, cacheFile: String? = nil,
                onEvent: @escaping @Sendable (Event) -> Void) {
        self.onEvent = onEvent
        self.readTags = readTags
        cache = readTags == nil ? nil : cacheFile.map(TagCache.init)
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
        var skipped = 0
        var lastReport = DispatchTime.now().uptimeNanoseconds
        var all: [String] = []
        guard walk(expanded, into: &all, skipped: &skipped, lastReport: &lastReport) else {
            onEvent(.problem("\(path): cannot read the folder"))
            return
        }
        // Folder order: paths in natural order ("track 2" before "track 10"), so albums and
        // track numbers line up.
        all.sort(by: NaturalOrder.less)
        append(all, skipped: skipped)
    }

    /// The audio files under `folder`, with readdir(3): the entry's type comes with its
    /// name, so only audio files are stat(2)ed (to drop dangling links and unreadable
    /// files). Symbolic links to folders are not followed (no cycles). Other files, and
    /// folders named like audio, count as skipped. False when `folder` cannot be opened.
    private func walk(_ folder: String, into all: inout [String], skipped: inout Int, lastReport: inout UInt64) -> Bool {
        guard let dir = opendir(folder) else { return false }
        defer { closedir(dir) }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name == "." || name == ".." { continue }
            let full = folder + "/" + name
            var isDirectory = entry.pointee.d_type == UInt8(DT_DIR)
            if entry.pointee.d_type == UInt8(DT_UNKNOWN) {
                // Some file systems do not say: ask without following a link.
                var st = stat()
                guard lstat(full, &st) == 0 else { skipped += 1; continue }
                isDirectory = (st.st_mode & S_IFMT) == S_IFDIR
            }
            let audio = Self.isAudio(name)
            if isDirectory {
                if audio { skipped += 1 }
                _ = walk(full, into: &all, skipped: &skipped, lastReport: &lastReport)
                continue
            }
            guard audio else {
                skipped += 1
                continue
            }
            var st = stat()
            if stat(full, &st) != 0 || (st.st_mode & S_IFMT) != S_IFREG || access(full, R_OK) != 0 {
                skipped += 1
                continue
            }
            all.append(full)
            let now = DispatchTime.now().uptimeNanoseconds
            if now - lastReport > 100_000_000 {
                lastReport = now
                let found = state.withLock { $0.found } + all.count
                onEvent(.progress(ScanProgress(found: found, skipped: skipped, finished: false)))
            }
        }
        return true
    }

    private func append(_ paths: [String], skipped: Int) {
        let entries = paths.map { p -> Entry in
            // Cut from the path itself (Foundation's URL took 5 µs a file for the same).
            let slash = p.lastIndex(of: "/")
            let file = slash.map { p[p.index(after: $0)...] } ?? p[...]
            let name = file.lastIndex(of: ".").map { $0 > file.startIndex ? file[..<$0] : file } ?? file
            let parent = slash.map { p[..<$0] } ?? ""
            let folder = parent.lastIndex(of: "/").map { parent[parent.index(after: $0)...] } ?? parent
            return Entry(path: p, name: String(name), folder: String(folder))
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
        if readTags != nil { tagQueue.async { [self] in readPendingTags() } }
    }

    /// Reads the tags of the rows not yet read, in order, publishing them in batches (one
    /// lock and one event per batch, not per file); saves the cache when it is done.
    private func readPendingTags() {
        guard let readTags else { return }
        var lastPublish = DispatchTime.now().uptimeNanoseconds
        var batch: [(Int, Tags?)] = []
        func publish() {
            guard !batch.isEmpty else { return }
            let (total, scanning) = state.withLock { s -> (Int, Bool) in
                for (i, tags) in batch where s.entries.indices.contains(i) { s.entries[i].tags = tags }
                s.version += 1
                return (s.entries.count, s.scansRunning > 0)
            }
            batch.removeAll(keepingCapacity: true)
            onEvent(.tagsRead(total: total, scanning: scanning))
        }
        while true {
            let next = tagged.withLock { $0 }
            guard let path = state.withLock({ $0.entries.indices.contains(next) ? $0.entries[next].path : nil }) else { break }
            let tags: Tags?
            if let cache, let hit = cache.lookup(path) {
                tags = hit
            } else {
                tags = readTags(path)
                cache?.store(path, tags)
            }
            batch.append((next, tags))
            tagged.withLock { $0 = next + 1 }
            let now = DispatchTime.now().uptimeNanoseconds
            if batch.count >= 512 || now - lastPublish > 200_000_000 {
                publish()
                lastPublish = now
            }
        }
        publish()
        cache?.save()
    }

    /// Cuts a page on the page queue and delivers it as an event.
    public func request(_ request: QueuePageRequest) {
        pageQueue.async { [self] in
            onEvent(.page(page(for: request)))
        }
    }

    /// The queue's indexes in `sort`'s order (folder order is the entries' own).
    public func order(_ sort: QueueSort) -> [Int] {
        state.withLock { s in Self.sorted(&s, sort) ?? Array(s.entries.indices) }
    }

    /// Rows in `sort`'s order, kept until the entries change; nil for folder order.
    private static func sorted(_ s: inout State, _ sort: QueueSort) -> [Int]? {
        guard sort != .path else { return nil }
        if let cache = s.sortCache, cache.sort == sort, cache.version == s.version { return cache.rows }
        let entries = s.entries
        // Album (case and accents aside), then track number, then path; no album last.
        // Paths are already in natural order, so the index breaks ties stably.
        let keys = entries.map { e -> (String?, Int) in (e.albumKey, e.tags?.track ?? Int.max) }
        let rows = entries.indices.sorted { a, b in
            let (x, y) = (keys[a], keys[b])
            switch (x.0, y.0) {
            case (nil, nil): return a < b
            case (nil, _): return false
            case (_, nil): return true
            case let (p?, q?) where p != q: return p < q
            default: return x.1 != y.1 ? x.1 < y.1 : a < b
            }
        }
        s.sortCache = (sort, s.version, rows)
        return rows
    }

    /// The page itself, computed on the caller's thread.
    public func page(for request: QueuePageRequest) -> QueuePage {
        state.withLock { s in
            let scanning = s.scansRunning > 0
            var request = request
            let ordered = Self.sorted(&s, request.sort)
            if request.filter.isEmpty, ordered == nil {
                var located: Int?
                if let index = request.locate, s.entries.indices.contains(index) {
                    located = index
                    request.offset = index / request.limit * request.limit
                }
                let end = min(s.entries.count, request.offset + request.limit)
                let items = request.offset < end
                    ? (request.offset..<end).map { Self.item(s.entries[$0], index: $0) } : []
                return QueuePage(request: request, items: items, total: s.entries.count,
                                 hasMore: scanning || end < s.entries.count, locatedRow: located)
            }
            let rows: [Int]
            if request.filter.isEmpty {
                rows = ordered ?? []
            } else if let cache = s.filterCache, cache.filter == request.filter, cache.sort == request.sort,
                      cache.version == s.version {
                rows = cache.rows
            } else {
                let needle = request.filter.lowercased()
                rows = (ordered ?? Array(s.entries.indices)).filter { i in
                    let e = s.entries[i]
                    return [e.name, e.folder, e.tags?.title, e.tags?.artist, e.tags?.album]
                        .contains { $0?.lowercased().contains(needle) == true }
                }
                s.filterCache = (request.filter, request.sort, s.version, rows)
            }
            var located: Int?
            if let index = request.locate, let row = rows.firstIndex(of: index) {
                located = row
                request.offset = row / request.limit * request.limit
            }
            let end = min(rows.count, request.offset + request.limit)
            let items = request.offset < end ? (request.offset..<end).map { Self.item(s.entries[rows[$0]], index: rows[$0]) } : []
            return QueuePage(request: request, items: items, total: rows.count, hasMore: end < rows.count, locatedRow: located)
        }
    }

    static func item(_ e: Entry, index: Int) -> QueueItem {
        QueueItem(index: index, title: e.title, detail: e.detail)
    }
}

/// Tags read before, on disk as one JSON file: path → size, modification time, tags. A
/// file whose size or time changed is read again. Touched only on the tag queue, and saved
/// (to a temporary file, then renamed) when a run of reads ends with something new.
final class TagCache: @unchecked Sendable {
    private struct Record: Codable {
        var size: Int64
        var mtime: Double
        var tags: LocalLibrary.Tags?
    }

    private let file: String
    private var records: [String: Record]?
    private var dirty = false
    /// Kept at most: past it, half of them (any half) is not saved: a cache, not a catalogue.
    static let limit = 500_000

    init(file: String) {
        self.file = file
    }

    private func load() -> [String: Record] {
        if let records { return records }
        let loaded = FileManager.default.contents(atPath: file).flatMap { try? JSONDecoder().decode([String: Record].self, from: $0) } ?? [:]
        records = loaded
        return loaded
    }

    private static func identity(_ path: String) -> (size: Int64, mtime: Double)? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return (Int64(st.st_size), Double(st.st_mtim.tv_sec) + Double(st.st_mtim.tv_nsec) / 1e9)
    }

    /// The cached tags of `path` when it has not changed since; nil (not `.some(nil)`) when
    /// it must be read.
    func lookup(_ path: String) -> LocalLibrary.Tags?? {
        guard let r = load()[path], let id = Self.identity(path), id.size == r.size, id.mtime == r.mtime else { return nil }
        return .some(r.tags)
    }

    func store(_ path: String, _ tags: LocalLibrary.Tags?) {
        guard let id = Self.identity(path) else { return }
        if records == nil { records = load() }
        // In place: a copy of the table per file would make a cold cache quadratic.
        records?[path] = Record(size: id.size, mtime: id.mtime, tags: tags)
        dirty = true
    }

    func save() {
        guard dirty, var all = records else { return }
        if all.count > Self.limit { all = Dictionary(uniqueKeysWithValues: all.prefix(Self.limit / 2).map { ($0.key, $0.value) }) }
        guard let data = try? JSONEncoder().encode(all) else { return }
        let dir = (file as NSString).deletingLastPathComponent
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let temporary = file + ".\(getpid()).tmp"
        guard FileManager.default.createFile(atPath: temporary, contents: data), rename(temporary, file) == 0 else { return }
        dirty = false
    }
}

/// Natural order of paths, as a file manager lists them: runs of digits compare as numbers
/// ("track 2" before "track 10"), letters without regard to ASCII case, other bytes as
/// they are (UTF-8 keeps code point order). Byte by byte: a 100,000-file folder sorts in
/// milliseconds, where Foundation's localized comparison took a quarter second for 10,000.
enum NaturalOrder {
    static func less(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in b.withUTF8 { y in compare(x, y) < 0 } }
    }

    static func compare(_ x: UnsafeBufferPointer<UInt8>, _ y: UnsafeBufferPointer<UInt8>) -> Int {
        func digit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        func fold(_ c: UInt8) -> UInt8 { c >= 0x41 && c <= 0x5A ? c + 32 : c }
        var i = 0, j = 0
        while i < x.count && j < y.count {
            if digit(x[i]) && digit(y[j]) {
                // Numbers: leading zeros aside, the longer run is larger, else the first
                // differing digit decides; equal values with more zeros come after.
                var si = i, sj = j
                while si < x.count && x[si] == 0x30 { si += 1 }
                while sj < y.count && y[sj] == 0x30 { sj += 1 }
                var ei = si, ej = sj
                while ei < x.count && digit(x[ei]) { ei += 1 }
                while ej < y.count && digit(y[ej]) { ej += 1 }
                if ei - si != ej - sj { return ei - si < ej - sj ? -1 : 1 }
                for k in 0..<(ei - si) where x[si + k] != y[sj + k] { return x[si + k] < y[sj + k] ? -1 : 1 }
                if ei - i != ej - j { return ei - i < ej - j ? -1 : 1 }
                i = ei
                j = ej
                continue
            }
            let c = fold(x[i]), d = fold(y[j])
            if c != d { return c < d ? -1 : 1 }
            i += 1
            j += 1
        }
        if x.count - i != y.count - j { return x.count - i < y.count - j ? -1 : 1 }
        // Equal but for ASCII case or leading zeros: the bytes decide, so the order is total.
        for k in 0..<min(x.count, y.count) where x[k] != y[k] { return x[k] < y[k] ? -1 : 1 }
        return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
    }
}
