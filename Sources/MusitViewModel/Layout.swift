import Synchronization
/// A rectangle of terminal cells.
public struct Rect: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var x: Int, y: Int, width: Int, height: Int

    public init(x: Int, y: Int, width: Int, height: Int) {
        self.x = x; self.y = y; self.width = width; self.height = height
    }

    public var maxX: Int { x + width }
    public var maxY: Int { y + height }
    public var isEmpty: Bool { width <= 0 || height <= 0 }

    public func contains(x px: Int, y py: Int) -> Bool {
        px >= x && px < maxX && py >= y && py < maxY
    }

    public var description: String { "\(width)x\(height)+\(x)+\(y)" }
}

public enum PaneID: String, Codable, CaseIterable, Sendable {
    case queue, nowPlaying, friends, chat

    /// The pane's title, as drawn in its border.
    public var title: String {
        switch self {
        case .queue: return "Queue"
        case .nowPlaying: return "Now Playing"
        case .friends: return "Friends"
        case .chat: return "Chat"
        }
    }

    /// Smallest usable size, borders included.
    public var minimum: (width: Int, height: Int) {
        switch self {
        case .nowPlaying: return (20, 5)
        default: return (12, 3)
        }
    }
}

public enum SplitAxis: String, Codable, Sendable {
    /// Side by side; the border between them is a column.
    case horizontal
    /// Stacked; the border between them is a row.
    case vertical
}

/// The size of a split's first child: fixed cells or a share of the split.
public enum SplitSize: Equatable, Codable, Sendable {
    case cells(Int)
    case percent(Double)

    func cells(of available: Int) -> Int {
        switch self {
        case .cells(let n): return n
        case .percent(let p): return Int((Double(available) * p / 100).rounded())
        }
    }

    /// The same kind of size, now meaning `cells` of `available`.
    func with(cells: Int, of available: Int) -> SplitSize {
        switch self {
        case .cells: return .cells(cells)
        case .percent: return .percent(available > 0 ? Double(cells) * 100 / Double(available) : 50)
        }
    }
}

/// A tree of splits with panes at the leaves.
public indirect enum LayoutNode: Equatable, Codable, Sendable {
    case pane(PaneID)
    case split(id: Int, axis: SplitAxis, size: SplitSize, first: LayoutNode, second: LayoutNode)

    public var panes: [PaneID] {
        switch self {
        case .pane(let p): return [p]
        case .split(_, _, _, let a, let b): return a.panes + b.panes
        }
    }

    func contains(_ pane: PaneID) -> Bool { panes.contains(pane) }
}

/// Where a split's border lies on screen, for dragging.
public struct SplitBorder: Equatable, Sendable {
    public let id: Int
    public let axis: SplitAxis
    /// The split's whole area.
    public let area: Rect
    /// Column (horizontal split) or row (vertical split) where the second child begins.
    public let position: Int
}

/// The saved and restored layout: the tree, hidden panes and a maximized pane.
public struct Layout: Equatable, Codable, Sendable {
    public var root: LayoutNode
    public var hidden: Set<PaneID> = []
    public var maximized: PaneID?

    public init(root: LayoutNode, hidden: Set<PaneID> = [], maximized: PaneID? = nil) {
        self.root = root
        self.hidden = hidden
        self.maximized = maximized
    }

    /// Queue on the left with Now Playing above it; Friends over Chat on the right.
    public static let standard = Layout(root:
        .split(id: 1, axis: .horizontal, size: .percent(60),
               first: .split(id: 2, axis: .vertical, size: .cells(8), first: .pane(.nowPlaying), second: .pane(.queue)),
               second: .split(id: 3, axis: .vertical, size: .percent(50), first: .pane(.friends), second: .pane(.chat))))

    public func isVisible(_ pane: PaneID) -> Bool {
        if let maximized { return pane == maximized }
        return !hidden.contains(pane)
    }

    private func visible(_ node: LayoutNode) -> Bool {
        node.panes.contains { isVisible($0) }
    }

    /// The rectangle of every visible pane within `area`.
    public func frames(in area: Rect) -> [PaneID: Rect] { computeFrames(in: area) }

    private func computeFrames(in area: Rect) -> [PaneID: Rect] {
        var out: [PaneID: Rect] = [:]
        if let maximized {
            out[maximized] = area
            return out
        }
        place(root, in: area, into: &out)
        return out
    }

    private func minimum(_ node: LayoutNode, _ axis: SplitAxis) -> Int {
        switch node {
        case .pane(let p):
            guard isVisible(p) else { return 0 }
            return axis == .horizontal ? p.minimum.width : p.minimum.height
        case .split(_, let a, _, let first, let second):
            let m1 = minimum(first, axis), m2 = minimum(second, axis)
            return a == axis ? m1 + m2 : max(m1, m2)
        }
    }

    /// How a split divides `area`: the first child's extent along the split's axis.
    private func firstExtent(axis: SplitAxis, size: SplitSize, first: LayoutNode, second: LayoutNode, area: Rect) -> Int {
        let available = axis == .horizontal ? area.width : area.height
        let lo = minimum(first, axis)
        let hi = available - minimum(second, axis)
        let wanted = size.cells(of: available)
        return hi < lo ? max(0, min(available, wanted)) : min(max(wanted, lo), hi)
    }

    private func place(_ node: LayoutNode, in area: Rect, into out: inout [PaneID: Rect]) {
        switch node {
        case .pane(let p):
            if isVisible(p) { out[p] = area }
        case .split(_, let axis, let size, let first, let second):
            let v1 = visible(first), v2 = visible(second)
            if !v1 && !v2 { return }
            if !v2 { return place(first, in: area, into: &out) }
            if !v1 { return place(second, in: area, into: &out) }
            let n = firstExtent(axis: axis, size: size, first: first, second: second, area: area)
            let (a, b) = split(area, axis, n)
            place(first, in: a, into: &out)
            place(second, in: b, into: &out)
        }
    }

    private func split(_ area: Rect, _ axis: SplitAxis, _ n: Int) -> (Rect, Rect) {
        switch axis {
        case .horizontal:
            return (Rect(x: area.x, y: area.y, width: n, height: area.height),
                    Rect(x: area.x + n, y: area.y, width: area.width - n, height: area.height))
        case .vertical:
            return (Rect(x: area.x, y: area.y, width: area.width, height: n),
                    Rect(x: area.x, y: area.y + n, width: area.width, height: area.height - n))
        }
    }

    /// Borders of splits whose two sides are both visible.
    public func borders(in area: Rect) -> [SplitBorder] {
        guard maximized == nil else { return [] }
        var out: [SplitBorder] = []
        collectBorders(root, area, &out)
        return out
    }

    private func collectBorders(_ node: LayoutNode, _ area: Rect, _ out: inout [SplitBorder]) {
        guard case .split(let id, let axis, let size, let first, let second) = node else { return }
        let v1 = visible(first), v2 = visible(second)
        if v1 && v2 {
            let n = firstExtent(axis: axis, size: size, first: first, second: second, area: area)
            let (a, b) = split(area, axis, n)
            out.append(SplitBorder(id: id, axis: axis, area: area, position: axis == .horizontal ? b.x : b.y))
            collectBorders(first, a, &out)
            collectBorders(second, b, &out)
        } else if v1 {
            collectBorders(first, area, &out)
        } else if v2 {
            collectBorders(second, area, &out)
        }
    }

    /// The split border under a mouse press: the last column/row of the first side or
    /// the first of the second side.
    public func border(at x: Int, _ y: Int, in area: Rect) -> SplitBorder? {
        // Innermost borders come later in the list; prefer them.
        for b in borders(in: area).reversed() {
            switch b.axis {
            case .horizontal:
                if (x == b.position || x == b.position - 1) && y >= b.area.y && y < b.area.maxY { return b }
            case .vertical:
                if (y == b.position || y == b.position - 1) && x >= b.area.x && x < b.area.maxX { return b }
            }
        }
        return nil
    }

    /// Moves split `id`'s border so the second side begins at `position` (clamped to minimums).
    public mutating func moveBorder(id: Int, to position: Int, in area: Rect) {
        guard let b = borders(in: area).first(where: { $0.id == id }) else { return }
        let origin = b.axis == .horizontal ? b.area.x : b.area.y
        let available = b.axis == .horizontal ? b.area.width : b.area.height
        root = updating(root, id: id) { axis, size, first, second in
            let lo = minimum(first, axis), hi = available - minimum(second, axis)
            let n = min(max(position - origin, lo), max(lo, hi))
            return size.with(cells: n, of: available)
        }
    }

    /// Grows (or with a negative `delta` shrinks) `pane` along `axis` by moving the border
    /// of its nearest enclosing split on that axis.
    public mutating func resize(_ pane: PaneID, axis: SplitAxis, by delta: Int, in area: Rect) {
        guard maximized == nil, let (id, inFirst) = enclosingSplit(of: pane, axis: axis, node: root),
              let b = borders(in: area).first(where: { $0.id == id }) else { return }
        moveBorder(id: id, to: b.position + (inFirst ? delta : -delta), in: area)
    }

    /// The nearest split on `axis` above `pane` whose both sides are visible, and whether
    /// the pane is in its first side.
    private func enclosingSplit(of pane: PaneID, axis: SplitAxis, node: LayoutNode) -> (Int, Bool)? {
        guard case .split(let id, let a, _, let first, let second) = node else { return nil }
        let inFirst = first.contains(pane)
        guard inFirst || second.contains(pane) else { return nil }
        if let deeper = enclosingSplit(of: pane, axis: axis, node: inFirst ? first : second) { return deeper }
        if a == axis && visible(first) && visible(second) { return (id, inFirst) }
        return nil
    }

    private func updating(_ node: LayoutNode, id: Int,
                          _ change: (SplitAxis, SplitSize, LayoutNode, LayoutNode) -> SplitSize) -> LayoutNode {
        guard case .split(let sid, let axis, let size, let first, let second) = node else { return node }
        if sid == id { return .split(id: sid, axis: axis, size: change(axis, size, first, second), first: first, second: second) }
        return .split(id: sid, axis: axis, size: size, first: updating(first, id: id, change), second: updating(second, id: id, change))
    }

    /// The size of split `id`, for tests and persistence.
    public func size(ofSplit id: Int) -> SplitSize? {
        func find(_ n: LayoutNode) -> SplitSize? {
            guard case .split(let sid, _, let size, let a, let b) = n else { return nil }
            return sid == id ? size : find(a) ?? find(b)
        }
        return find(root)
    }
}
