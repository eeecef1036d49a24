/// Something the player can play: for now a file path.
public struct Track: Hashable, Sendable {
    public var location: String

    public init(_ location: String) {
        self.location = location
    }
}

public enum RepeatMode: String, Sendable, CaseIterable {
    case off, all, one

    public var next: RepeatMode {
        switch self {
        case .off: return .all
        case .all: return .one
        case .one: return .off
        }
    }
}

/// The order tracks play in: a list, a cursor, repeat and shuffle.
/// Shuffle plays every track once in a random order that keeps the current track.
public struct PlayQueue: Sendable {
    public private(set) var tracks: [Track] = []
    /// Play order as indexes into `tracks`.
    private var order: [Int] = []
    /// The order without shuffle: `tracks`' own, or one set by `setOrder` (a sorted queue).
    private var baseOrder: [Int] = []
    /// Position of the current track in `order`.
    private var cursor: Int?
    public var repeatMode: RepeatMode = .off
    public private(set) var shuffle = false

    public init(_ tracks: [Track] = []) {
        self.tracks = tracks
        order = Array(tracks.indices)
        baseOrder = order
    }

    public var currentIndex: Int? { cursor.map { order[$0] } }
    public var current: Track? { currentIndex.map { tracks[$0] } }
    public var isEmpty: Bool { tracks.isEmpty }

    public mutating func append(_ new: [Track]) {
        let start = tracks.count
        tracks += new
        var added = Array(start..<tracks.count)
        baseOrder += added
        if shuffle { added.shuffle() }
        order += added
    }

    /// Plays the tracks in `newOrder` (every index once; anything else is ignored),
    /// keeping the current track; with shuffle on it becomes the order shuffle returns to.
    public mutating func setOrder(_ newOrder: [Int]) {
        guard newOrder.count == tracks.count, Set(newOrder).count == tracks.count,
              newOrder.allSatisfy({ tracks.indices.contains($0) }) else { return }
        baseOrder = newOrder
        guard !shuffle else { return }
        let current = currentIndex
        order = newOrder
        cursor = current.flatMap { order.firstIndex(of: $0) }
    }

    /// The play order, as indexes into `tracks`.
    public var playOrder: [Int] { order }

    /// Makes track `index` current.
    public mutating func select(_ index: Int) {
        guard tracks.indices.contains(index) else { return }
        cursor = order.firstIndex(of: index)
    }

    /// The index that would follow the current one when it ends by itself.
    public func peekNext(afterEnd: Bool = true) -> Int? {
        guard let cursor else { return order.first }
        if afterEnd && repeatMode == .one { return order[cursor] }
        if cursor + 1 < order.count { return order[cursor + 1] }
        return repeatMode == .off ? nil : order.first
    }

    /// Advances; `afterEnd` is true when a track ended by itself (repeat-one replays it).
    @discardableResult
    public mutating func advance(afterEnd: Bool = true) -> Int? {
        guard let next = peekNext(afterEnd: afterEnd) else { return nil }
        cursor = order.firstIndex(of: next)
        return next
    }

    /// The index before the current one (wrapping when repeat is on).
    public func peekPrevious() -> Int? {
        guard let cursor else { return order.last }
        if cursor > 0 { return order[cursor - 1] }
        return repeatMode == .off ? nil : order.last
    }

    public mutating func setShuffle(_ on: Bool) {
        shuffle = on
        let current = currentIndex
        if on {
            var rest = tracks.indices.filter { $0 != current }
            rest.shuffle()
            order = (current.map { [$0] } ?? []) + rest
        } else {
            order = baseOrder
        }
        cursor = current.flatMap { order.firstIndex(of: $0) }
    }
}
