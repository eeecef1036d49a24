/// One row of the queue.
public struct QueueItem: Equatable, Sendable {
    /// Position in the whole, unfiltered queue: what the player plays.
    public var index: Int
    public var title: String
    public var detail: String?
    public var duration: Double?

    public init(index: Int, title: String, detail: String? = nil, duration: Double? = nil) {
        self.index = index
        self.title = title
        self.detail = detail
        self.duration = duration
    }
}

/// The order of the queue's rows, and the order the player plays them in.
public enum QueueSort: String, CaseIterable, Equatable, Hashable, Sendable {
    /// As the folders list them (paths in natural order): the order files were added in.
    case path
    /// By album, then track number, then path; files without an album last.
    case album

    public var label: String {
        switch self {
        case .path: "folder order"
        case .album: "by album"
        }
    }
}

/// A request for rows `offset..<offset+limit` of the queue as filtered by `filter`, in
/// the order `sort`.
public struct QueuePageRequest: Equatable, Hashable, Sendable {
    public var offset: Int
    public var limit: Int
    public var filter: String
    public var sort: QueueSort
    /// Answers to an older generation (before the filter changed) are ignored.
    public var generation: Int
    /// Instead of `offset`: the page holding the row of this queue index (the source
    /// answers with that page's offset and `QueuePage.locatedRow`).
    public var locate: Int?

    public init(offset: Int, limit: Int, filter: String, sort: QueueSort = .path, generation: Int, locate: Int? = nil) {
        self.offset = offset
        self.limit = limit
        self.filter = filter
        self.sort = sort
        self.generation = generation
        self.locate = locate
    }
}

/// A page the data source delivered.
public struct QueuePage: Equatable, Sendable {
    public var request: QueuePageRequest
    public var items: [QueueItem]
    /// Rows in all, when the source knows.
    public var total: Int?
    /// Whether rows exist past this page.
    public var hasMore: Bool
    /// The row of `request.locate`, when it was asked for and found.
    public var locatedRow: Int?

    public init(request: QueuePageRequest, items: [QueueItem], total: Int?, hasMore: Bool, locatedRow: Int? = nil) {
        self.request = request
        self.items = items
        self.total = total
        self.hasMore = hasMore
        self.locatedRow = locatedRow
    }
}

/// Where rows come from: local files today, the server's library later. Answers arrive
/// later as `Action.pageLoaded`; the view model never blocks on them.
public protocol QueueDataSource: AnyObject {
    func request(_ request: QueuePageRequest)
}

/// A virtualized list over a paged source: only pages near the viewport are held,
/// and drawing touches only visible rows.
public struct QueueState: Equatable, Sendable {
    public var pageSize: Int
    /// Pages kept around the viewport; others are dropped and fetched again if needed.
    public var keepPages: Int
    public private(set) var pages: [Int: [QueueItem]] = [:]
    /// Rows known to exist.
    public private(set) var count = 0
    /// More rows may follow `count`.
    public private(set) var hasMore = true
    public private(set) var cursor = 0
    public private(set) var top = 0
    public private(set) var filter = ""
    public private(set) var sort = QueueSort.path
    public private(set) var generation = 0
    public private(set) var pending: Set<Int> = []
    /// The queue index that is playing (unfiltered).
    public var playingIndex: Int?
    /// A row to move to once it has loaded (a jump past what is known).
    public private(set) var pendingJump: Int?

    public init(pageSize: Int = 100, keepPages: Int = 6) {
        self.pageSize = pageSize
        self.keepPages = keepPages
    }

    public func item(at row: Int) -> QueueItem? {
        guard row >= 0 else { return nil }
        let page = pages[row / pageSize]
        let i = row % pageSize
        guard let page, i < page.count else { return nil }
        return page[i]
    }

    public var selected: QueueItem? { item(at: cursor) }

    /// Moves the cursor by `delta` rows (clamped), keeping it on screen.
    public mutating func move(by delta: Int, visibleRows: Int) -> [QueuePageRequest] {
        setCursor(cursor + delta, visibleRows: visibleRows)
    }

    public mutating func setCursor(_ row: Int, visibleRows: Int) -> [QueuePageRequest] {
        cursor = max(0, min(row, count - 1))
        if count == 0 { cursor = 0 }
        scrollToCursor(visibleRows: visibleRows)
        return fetch(visibleRows: visibleRows)
    }

    /// Moves to `row`, fetching it first when it lies beyond the rows known so far.
    public mutating func jump(to row: Int, visibleRows: Int) -> [QueuePageRequest] {
        guard row >= count, hasMore else {
            pendingJump = nil
            return setCursor(row, visibleRows: visibleRows)
        }
        pendingJump = row
        let page = row / pageSize
        guard pages[page] == nil, !pending.contains(page) else { return [] }
        pending.insert(page)
        return [QueuePageRequest(offset: page * pageSize, limit: pageSize, filter: filter, sort: sort, generation: generation)]
    }

    /// Moves to the row of queue index `index`: the same row in folder order, otherwise
    /// asked of the source (which knows its order).
    public mutating func locate(index: Int, visibleRows: Int) -> [QueuePageRequest] {
        guard isFiltered else { return jump(to: index, visibleRows: visibleRows) }
        pendingJump = nil
        return [QueuePageRequest(offset: 0, limit: pageSize, filter: filter, sort: sort, generation: generation, locate: index)]
    }

    public mutating func scroll(by delta: Int, visibleRows: Int) -> [QueuePageRequest] {
        let rows = max(1, visibleRows)
        top = max(0, min(top + delta, max(0, count - rows)))
        cursor = min(max(cursor, top), top + rows - 1)
        cursor = max(0, min(cursor, count - 1))
        return fetch(visibleRows: visibleRows)
    }

    private mutating func scrollToCursor(visibleRows: Int) {
        let rows = max(1, visibleRows)
        if cursor < top { top = cursor }
        if cursor >= top + rows { top = cursor - rows + 1 }
        top = max(0, min(top, max(0, count - rows)))
    }

    /// Starts over with a new filter (or the same one, after the source changed), and a new
    /// order when `sort` is given.
    public mutating func reset(filter: String, sort: QueueSort? = nil, visibleRows: Int) -> [QueuePageRequest] {
        self.filter = filter
        if let sort { self.sort = sort }
        generation += 1
        pages = [:]
        pending = []
        count = 0
        hasMore = true
        cursor = 0
        top = 0
        pendingJump = nil
        return fetch(visibleRows: visibleRows)
    }

    /// The source grew or shrank (a scan found files): known rows change, the last page is refetched.
    public mutating func sourceChanged(total: Int, hasMore more: Bool, visibleRows: Int) -> [QueuePageRequest] {
        guard !isFiltered else { return [] }
        let lastPage = count / pageSize
        if total != count { pages[lastPage] = nil; pending.remove(lastPage) }
        count = total
        hasMore = more
        cursor = min(cursor, max(0, count - 1))
        return fetch(visibleRows: visibleRows)
    }

    /// Every row may have changed (songs deleted on the server): drop all pages, keep the
    /// cursor where it can stay, and fetch what is visible again.
    public mutating func invalidate(total: Int, hasMore more: Bool, visibleRows: Int) -> [QueuePageRequest] {
        generation += 1
        pages = [:]
        pending = []
        count = total
        hasMore = more
        cursor = min(cursor, max(0, count - 1))
        top = min(top, cursor)
        return fetch(visibleRows: visibleRows)
    }

    public mutating func loaded(_ page: QueuePage, visibleRows: Int) -> [QueuePageRequest] {
        guard page.request.generation == generation, page.request.filter == filter, page.request.sort == sort else { return [] }
        let number = page.request.offset / pageSize
        pending.remove(number)
        pages[number] = page.items
        let end = page.request.offset + page.items.count
        if let total = page.total {
            count = total
        } else {
            count = max(count, end)
        }
        hasMore = page.hasMore
        if !page.hasMore && page.total == nil { count = end }
        if let target = pendingJump, target < count || !hasMore {
            pendingJump = nil
            return setCursor(target, visibleRows: visibleRows)
        }
        if page.request.locate != nil, let row = page.locatedRow {
            return setCursor(row, visibleRows: visibleRows)
        }
        return fetch(visibleRows: visibleRows)
    }

    /// Requests what the viewport needs: missing visible pages, and the next page when the
    /// cursor comes within a screen of the end of what is known. Drops far pages.
    public mutating func fetch(visibleRows: Int) -> [QueuePageRequest] {
        let rows = max(1, visibleRows)
        var wanted: [Int] = []
        if count > 0 {
            let first = top / pageSize
            let last = max(first, (min(count, top + rows) - 1) / pageSize)
            for p in first...last where pages[p] == nil { wanted.append(p) }
        }
        if hasMore && cursor >= count - rows {
            let next = count / pageSize
            if pages[next] == nil || (pages[next]?.count ?? 0) < pageSize { wanted.append(next) }
        }
        var requests: [QueuePageRequest] = []
        for p in wanted where !pending.contains(p) {
            pending.insert(p)
            requests.append(QueuePageRequest(offset: p * pageSize, limit: pageSize, filter: filter, sort: sort, generation: generation))
        }
        evict(rows: rows)
        return requests
    }

    private mutating func evict(rows: Int) {
        let first = top / pageSize
        let last = (top + rows) / pageSize
        for p in pages.keys where p < first - keepPages / 2 || p > last + keepPages / 2 {
            pages[p] = nil
        }
    }

    /// Rows of the unfiltered queue in folder order map one to one onto queue indexes;
    /// otherwise each row names its index.
    public var isFiltered: Bool { !filter.isEmpty || sort != .path }
}
