import MusitArt

/// The colour themes: `album` follows the cover of what plays; the others are fixed.
public enum ThemeName: String, Sendable, CaseIterable, Codable {
    case album, classic, ocean, forest, ember

    /// The fixed looks' colours; nil for the classic terminal palette and for `album`.
    public var seeds: [OKLab]? {
        switch self {
        case .album, .classic: return nil
        case .ocean: return [OKLab(L: 0.75, chroma: 0.12, hue: 240 * .pi / 180)]
        case .forest: return [OKLab(L: 0.78, chroma: 0.13, hue: 145 * .pi / 180)]
        case .ember: return [OKLab(L: 0.78, chroma: 0.15, hue: 50 * .pi / 180)]
        }
    }
}

/// How the screen looks: the cover, the colours taken from it and their cross-fade, the
/// visualizer. The colours are data here; the renderer paints them.
public struct Appearance: Equatable, Sendable {
    public var theme: ThemeName = .album
    public var coverEnabled = true
    public var visualizer = false
    /// The terminal shows 24-bit colour: ambient colours and gradients are drawn.
    public var trueColor = false
    /// The terminal shows colours at all and speaks UTF-8: covers are drawn.
    public var canPaint = false
    /// The terminal speaks the kitty graphics protocol: the cover is the real image, placed
    /// by the terminal over blank cells, not half blocks.
    public var kitty = false

    /// The artwork of what plays: its key (the track) and whether it has a picture.
    public var artworkKey: String?
    public var hasPicture = false
    /// The album's colours, kept for a switch back to the `album` theme.
    public var albumSeeds: [OKLab]?
    /// The picture as cells for Now Playing, once scaled (off the UI thread) for the pane.
    public var cover: CoverCells?
    /// The colours faded to, and from; nil: the classic palette.
    public var look: AmbientLook?
    public var fadeFrom: AmbientLook?
    public var fadeStart = 0.0
    /// When the title shown last changed, for a long one to scroll from its start.
    public var titleSince = 0.0
    /// Band levels 0…1 of what is heard, low to high, while the visualizer is on.
    public var spectrum: [Double] = []

    public static let fadeDuration = 0.3

    public init() {}

    /// The colours at UI time `clock`: part-way through a cross-fade, or the target.
    public func currentLook(at clock: Double) -> AmbientLook? {
        guard trueColor, let look else { return nil }
        guard let from = fadeFrom else { return look }
        let t = (clock - fadeStart) / Self.fadeDuration
        return t >= 1 ? look : from.mixed(with: look, max(0, t))
    }

    public func fading(at clock: Double) -> Bool {
        fadeFrom != nil && clock - fadeStart < Self.fadeDuration
    }

    /// The look the theme gives: a fixed one's, or the album's (neutral until one plays).
    public var target: AmbientLook? {
        switch theme {
        case .classic: return nil
        case .album: return AmbientLook(seeds: albumSeeds ?? [])
        default: return theme.seeds.map { AmbientLook(seeds: $0) }
        }
    }

    /// Cross-fades, from what is on screen at `clock`, to what the theme and the album now
    /// call for.
    public mutating func retarget(at clock: Double) {
        let next = target
        guard next != look else { return }
        fadeFrom = currentLook(at: clock) ?? (trueColor ? next : nil)
        look = next
        fadeStart = clock
    }

    /// The visualizer on or off; off forgets the last bands.
    public mutating func setVisualizer(_ on: Bool) {
        visualizer = on
        if !on { spectrum = [] }
    }
}

/// What the app should scale a cover to: the track's picture for the box Now Playing has.
public struct CoverRequest: Equatable, Sendable {
    public var key: String
    public var columns: Int
    public var rows: Int
}

extension AppState {
    /// The cover the screen wants: the playing track's picture, for the box Now Playing has
    /// now (the app asks for it again only when this changes).
    public var coverRequest: CoverRequest? {
        guard appearance.hasPicture, let key = appearance.artworkKey, let frame = frames[.nowPlaying],
              let box = PaneGeometry.coverBox(PaneGeometry.inner(frame), self) else { return nil }
        return CoverRequest(key: key, columns: box.width, rows: box.height)
    }
}

extension PaneGeometry {
    /// Room for the cover at the left of Now Playing: square pixels (two per cell, one above
    /// the other), at most a third of the pane's width.
    public static func coverBox(_ inner: Rect, _ s: AppState) -> Rect? {
        let a = s.appearance
        guard a.coverEnabled, a.canPaint, a.hasPicture, inner.height >= 3, inner.width >= 36 else { return nil }
        let cols = min(inner.height * 2, inner.width / 3)
        return Rect(x: inner.x + 1, y: inner.y, width: cols, height: inner.height)
    }

    /// Where a cover of `cover`'s cells sits in `box`: centred, clipped to it.
    public static func coverRect(_ box: Rect, _ cover: CoverCells) -> Rect {
        let cols = min(cover.columns, box.width), rows = min(cover.rows, box.height)
        return Rect(x: box.x + (box.width - cols) / 2, y: box.y + (box.height - rows) / 2, width: cols, height: rows)
    }

    /// The cover on screen now, and where: for a terminal that places the real image.
    public static func shownCover(_ s: AppState) -> (cover: CoverCells, rect: Rect)? {
        guard let frame = s.frames[.nowPlaying], let cover = s.appearance.cover, cover.key == s.appearance.artworkKey,
              let box = coverBox(inner(frame), s) else { return nil }
        return (cover, coverRect(box, cover))
    }

    /// Where Now Playing's text goes: right of the cover, when there is one.
    public static func nowPlayingText(_ inner: Rect, _ s: AppState) -> Rect {
        guard let box = coverBox(inner, s) else { return inner }
        let x = box.maxX + 1
        return Rect(x: x, y: inner.y, width: max(0, inner.maxX - x), height: inner.height)
    }
}
