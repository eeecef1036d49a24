import Foundation
@testable import MusitLibrary
import MusitViewModel
import MusitTestSupport
import Testing

@Suite("Local library: folders scanned in the background, served in pages")
struct LibraryTests {
    /// 9,000 MP3 names, 800 other files, 150 dangling links named .mp3 (unreadable even
    /// for root) and 50 folders named .mp3, in nested folders.
    @Test("a folder of 10,000 mixed files yields exactly its readable MP3s, with progress")
    func bigFolder() async throws {
        let root = NSTemporaryDirectory() + "musit-lib-\(UUID().uuidString)"
        let fm = FileManager.default
        for d in 0..<10 { try fm.createDirectory(atPath: "\(root)/album \(d)", withIntermediateDirectories: true) }
        for i in 0..<9_000 { fm.createFile(atPath: "\(root)/album \(i % 10)/track \(i).mp3", contents: nil) }
        for i in 0..<800 { fm.createFile(atPath: "\(root)/album \(i % 10)/notes \(i).txt", contents: nil) }
        for i in 0..<150 { try fm.createSymbolicLink(atPath: "\(root)/album \(i % 10)/gone \(i).mp3", withDestinationPath: "/nonexistent/\(i)") }
        for i in 0..<50 { try fm.createDirectory(atPath: "\(root)/album \(i % 10)/folder \(i).mp3", withIntermediateDirectories: true) }
        defer { try? fm.removeItem(atPath: root) }

        let events = Locked<[LocalLibrary.Event]>([])
        let done = Locked<Bool>(false)
        let library = LocalLibrary { e in
            events.withLock { $0.append(e) }
            if case .progress(let p) = e, p.finished { done.withLock { $0 = true } }
        }
        let start = Date()
        library.add([root])
        while !done.withLock({ $0 }) && Date().timeIntervalSince(start) < 60 {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(done.withLock { $0 }, "scan finished")
        #expect(library.count == 9_000)
        let progress = events.withLock { $0 }.compactMap { if case .progress(let p) = $0 { p } else { nil } }
        #expect(progress.last == ScanProgress(found: 9_000, skipped: 1_000, finished: true))
        // Sorted naturally: "track 2" before "track 10" within a folder.
        let first = library.page(for: QueuePageRequest(offset: 0, limit: 3, filter: "", generation: 0))
        #expect(first.items.map(\.title) == ["track 0", "track 10", "track 20"])
        #expect(first.total == 9_000 && first.hasMore)
        let last = library.page(for: QueuePageRequest(offset: 8_990, limit: 100, filter: "", generation: 0))
        #expect(last.items.count == 10 && !last.hasMore)
        let filtered = library.page(for: QueuePageRequest(offset: 0, limit: 100, filter: "TRACK 12", generation: 1))
        #expect(filtered.total == 111, "track 12, 120-129, 1200-1299")
        #expect(filtered.items.allSatisfy { $0.title.hasPrefix("track 12") })
        #expect(filtered.items.allSatisfy { library.entry(at: $0.index)?.title == $0.title }, "rows map to queue indexes")
    }

    @Test("a missing path is reported, a single file is taken as is")
    func paths() async throws {
        let problems = Locked<[String]>([])
        let library = LocalLibrary { e in if case .problem(let p) = e { problems.withLock { $0.append(p) } } }
        library.addNow(["/nonexistent/music", Fixtures.path("sine440.mp3")])
        #expect(problems.withLock { $0 } == ["/nonexistent/music: no such file or folder"])
        #expect(library.count == 1)
        #expect(library.entry(at: 0)?.title == "sine440")
    }

    @Test("tags read after the scan turn rows into title and artist · album, the filter finds them, and a cache skips unchanged files")
    func tagsAndCache() async throws {
        let root = NSTemporaryDirectory() + "musit-tags-\(UUID().uuidString)"
        let fm = FileManager.default
        try fm.createDirectory(atPath: root + "/folder", withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: root) }
        for name in ["a", "b", "c"] { fm.createFile(atPath: "\(root)/folder/\(name).mp3", contents: Data(name.utf8)) }
        let cacheFile = root + "/cache/tags.json"
        let reads = Locked<[String]>([])
        let reader: @Sendable (String) -> LocalLibrary.Tags? = { path in
            reads.withLock { $0.append(path) }
            let name = (path as NSString).lastPathComponent
            return name == "c.mp3" ? nil : LocalLibrary.Tags(title: "Song " + name.prefix(1).uppercased(), artist: "Artist", album: "Album", track: 1)
        }
        func open() async throws -> LocalLibrary {
            let library = LocalLibrary(readTags: reader, cacheFile: cacheFile) { _ in }
            library.addNow([root])
            let start = Date()
            while Date().timeIntervalSince(start) < 10 {
                let items = library.page(for: QueuePageRequest(offset: 0, limit: 10, filter: "", generation: 0)).items
                if items.map(\.title) == ["Song A", "Song B", "c"], fm.fileExists(atPath: cacheFile) { return library }
                try await Task.sleep(for: .milliseconds(10))
            }
            Issue.record("tags never showed: \(library.page(for: QueuePageRequest(offset: 0, limit: 10, filter: "", generation: 0)).items)")
            return library
        }
        let first = try await open()
        let items = first.page(for: QueuePageRequest(offset: 0, limit: 10, filter: "", generation: 0)).items
        #expect(items.map(\.detail) == ["Artist · Album", "Artist · Album", "folder"], "a file without tags keeps its folder")
        #expect(first.page(for: QueuePageRequest(offset: 0, limit: 10, filter: "ALBUM", generation: 1)).items.map(\.title) == ["Song A", "Song B"],
                "the filter matches tags")
        #expect(reads.withLock { $0.count } == 3)
        // Opened again: every tag from the cache, no file read.
        _ = try await open()
        #expect(reads.withLock { $0.count } == 3, "second open read \(reads.withLock { $0.count } - 3) files")
        // One file changed: only it is read again.
        fm.createFile(atPath: root + "/folder/b.mp3", contents: Data("bb".utf8))
        _ = try await open()
        #expect(reads.withLock { $0 }.count == 4 && reads.withLock { $0 }.last?.hasSuffix("b.mp3") == true)
    }

    @Test("by album: album, then track number, then path, files without an album last; filtered and located in that order")
    func albumOrder() async throws {
        let root = NSTemporaryDirectory() + "musit-sort-\(UUID().uuidString)"
        let fm = FileManager.default
        try fm.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? fm.removeItem(atPath: root) }
        // Folder order a…f; albums and tracks that order them otherwise.
        let tags: [String: LocalLibrary.Tags] = [
            "a": .init(title: "A", album: "Zebra", track: 1), "b": .init(title: "B", album: "apple", track: 2),
            "c": .init(title: "C", album: "Äpple", track: 1), "d": .init(title: "D"),
            "e": .init(title: "E", album: "Apple", track: nil), "f": .init(title: "F", album: "zebra", track: 0),
        ]
        for name in tags.keys { fm.createFile(atPath: "\(root)/\(name).mp3", contents: Data(name.utf8)) }
        let library = LocalLibrary(readTags: { tags[(($0 as NSString).lastPathComponent as NSString).deletingPathExtension] }) { _ in }
        library.addNow([root])
        let start = Date()
        while library.page(for: QueuePageRequest(offset: 0, limit: 10, filter: "", generation: 0)).items.first?.title != "A",
              Date().timeIntervalSince(start) < 10 {
            try await Task.sleep(for: .milliseconds(10))
        }
        // "apple", "Äpple" and "Apple" are one album (case and accents aside): by track, the
        // track-less last; "Zebra" and "zebra" likewise; "d" has no album.
        #expect(library.order(.album).map { library.entry(at: $0)!.title } == ["C", "B", "E", "F", "A", "D"])
        #expect(library.order(.path) == [0, 1, 2, 3, 4, 5])
        let page = library.page(for: QueuePageRequest(offset: 0, limit: 10, filter: "", sort: .album, generation: 1))
        #expect(page.items.map(\.title) == ["C", "B", "E", "F", "A", "D"] && page.total == 6)
        #expect(page.items.allSatisfy { library.entry(at: $0.index)?.title == $0.title }, "rows name their queue index")
        let zebra = library.page(for: QueuePageRequest(offset: 0, limit: 10, filter: "zebra", sort: .album, generation: 2))
        #expect(zebra.items.map(\.title) == ["F", "A"])
        let found = library.page(for: QueuePageRequest(offset: 0, limit: 2, filter: "", sort: .album, generation: 3, locate: 0))
        #expect(found.locatedRow == 4 && found.request.offset == 4 && found.items.map(\.title) == ["A", "D"])
    }

    @Test("natural order: numbers as numbers, letters in either case, a total order")
    func naturalOrder() {
        let names = ["track 10.mp3", "Track 2.mp3", "track 2.mp3", "track 1.mp3", "track 01.mp3", "album/b", "album 2/a",
                     "album 10/a", "Ärger", "zebra", "Zebra", "x9", "x10y", "x10", ""]
        let sorted = names.sorted(by: NaturalOrder.less)
        #expect(sorted == ["", "album 2/a", "album 10/a", "album/b", "track 1.mp3", "track 01.mp3", "Track 2.mp3", "track 2.mp3",
                           "track 10.mp3", "x9", "x10", "x10y", "Zebra", "zebra", "Ärger"], "\(sorted)")
        // A strict weak order: irreflexive and never both ways.
        for a in names {
            #expect(!NaturalOrder.less(a, a))
            for b in names where a != b { #expect(NaturalOrder.less(a, b) != NaturalOrder.less(b, a), "\(a) \(b)") }
        }
    }
}
