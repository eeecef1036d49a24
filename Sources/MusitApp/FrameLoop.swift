import Foundation
import MusitAudio
import MusitRender
import MusitTerminal
import MusitViewModel

/// The player's status as the UI loop last read it, for effects that need more of it than
/// the state keeps (the embedded picture). Used on the UI thread only.
final class SeenStatus {
    var status: PlayerStatus?
}

/// The UI loop: sleeps until input, an event or the frame clock wakes it, feeds what came
/// to the store, and draws. What the screen shows starts from the store's effects (covers,
/// colours, pages); the loop only reads the player's status and the visualizer's tap.
struct FrameLoop {
    let store: Store
    let player: Player
    let inbox: Inbox
    let renderer: Renderer
    let terminal: CursesTerminal
    let covers: CoverLoader
    let seen: SeenStatus

    /// Until quit or a termination signal.
    func run() {
        // The last frame and the state it shows. The frame is drawn over in place: the
        // terminal keeps its own copy, so nothing else holds it and nothing is copied.
        var shownState = store.state
        var frame = renderer.render(shownState)
        terminal.draw(frame)
        var analyser = SpectrumAnalyser()
        // When something other than the visualizer next moves, and how much the visualizer
        // had heard when it last drew.
        var due = 0.0
        var heardEnd: Int64 = -1
        var drawnAt: UInt64 = 0
        while !store.state.quitting {
            // Sleep until something on screen moves (or input and events arrive): an idle
            // screen wakes nobody, a playing one at most `FrameClock.maxRate` times a second.
            var wait = FrameClock.delay(store.state, at: ProcessInfo.processInfo.systemUptime)
            if store.state.appearance.visualizer, store.state.nowPlaying.state == .playing, !player.tap.movesBetweenWrites() {
                // The device takes audio in blocks and tells no delay: what is heard moves
                // only when the engine writes, and the tap wakes the loop then (no sooner
                // than a frame after the last).
                wait = max(wait, due - ProcessInfo.processInfo.systemUptime)
                player.tap.wakeAfterWrite(notBefore: drawnAt + UInt64(1e9 / FrameClock.maxRate)) { [inbox] in inbox.wake() }
            }
            let messages = inbox.take(timeout: wait)
            // Woken for the visualizer alone: no input, no event, and nothing else on screen
            // due (`due` says when the clock, the bar, a scrolling title or a fade next move).
            // The state then moves only by the bars: the clock, the player's status and the
            // cover are not read again.
            let barsOnly = messages.isEmpty && store.state.appearance.visualizer
                && store.state.nowPlaying.state == .playing && ProcessInfo.processInfo.systemUptime < due
            // ... and when the device has played nothing since they were drawn (one that
            // takes audio in large blocks and tells no delay), not even they moved.
            if barsOnly && player.tap.heardEnd() == heardEnd { continue }
            if !barsOnly {
                // The clock first: what the messages start (a title, a fade) starts now.
                store.send(.tick(ProcessInfo.processInfo.systemUptime))
                for message in messages {
                    switch message {
                    case .action(let a): store.send(a)
                    case .wake: break
                    case .quitSignal: return
                    }
                }
                let status = player.status
                // What the artwork effect reads its picture from (`Effect.artwork`).
                seen.status = status
                var np = TerminalApp.nowPlaying(status)
                np.stamp = store.state.nowPlaying.stamp
                if np != store.state.nowPlaying { store.send(.nowPlaying(np)) }
            }
            if store.state.appearance.visualizer {
                heardEnd = player.tap.heardEnd()
                let playing = store.state.nowPlaying.state == .playing
                if playing, let rate = analyser.samples.withUnsafeMutableBufferPointer({ player.tap.heard(into: $0) }) {
                    store.send(.spectrum(analyser.levels(sampleRate: rate, bands: FrameClock.bands)))
                } else if !store.state.appearance.spectrum.isEmpty, !playing {
                    store.send(.spectrum([]))
                }
            }
            // Only what moved is drawn again when nothing but time has changed.
            if barsOnly {
                renderer.redrawBands(store.state, over: &frame, drawnFrom: shownState)
                // Only the bands moved (`redrawBands` checks it in debug builds): the rest of
                // the state, a large struct, is not copied.
                shownState.appearance.spectrum = store.state.appearance.spectrum
            } else {
                renderer.render(store.state, over: &frame, drawnFrom: shownState)
                shownState = store.state
            }
            // The terminal draws only what differs from what it drew last (nothing, often).
            terminal.draw(frame)
            drawnAt = AudioTap.now()
            if barsOnly { continue }
            let now = ProcessInfo.processInfo.systemUptime
            due = now + FrameClock.delay(store.state, at: now, visualizer: false)
            if store.state.appearance.kitty {
                terminal.showImage(PaneGeometry.shownCover(store.state).flatMap { shown in
                    covers.picture(shown.cover.key).map { (shown.cover.key, $0, shown.rect) }
                })
            }
        }
    }
}

/// When the next frame is due: as soon as something visible moves, and never more often
/// than `maxRate` a second.
public enum FrameClock {
    public static let maxRate = 30.0
    public static let bands = 32
    /// Nothing moves: the loop still wakes on input and events, and now and then to tick.
    public static let idle = 30.0

    /// Seconds until the next frame is due; without `visualizer`, as if it were off.
    public static func delay(_ s: AppState, at now: Double, visualizer: Bool = true) -> Double {
        let minimum = 1 / maxRate
        let a = s.appearance
        if a.fading(at: now) { return minimum }
        let np = s.nowPlaying
        if np.state == .playing && a.visualizer && visualizer { return minimum }
        let text = s.frames[.nowPlaying].map { PaneGeometry.nowPlayingText(PaneGeometry.inner($0), s) }
        var next = idle
        if s.social.friends.contains(where: { $0.playing != nil }) { next = 1 }
        if np.state == .playing {
            let position = np.position(at: now)
            // The clock's next second.
            next = min(next, 1 - position.truncatingRemainder(dividingBy: 1))
            // The bar's next eighth of a cell.
            if let duration = np.duration, duration > 0, let text, let bar = PaneGeometry.progressBar(text) {
                let step = duration / Double(bar.width * 8)
                next = min(next, step - position.truncatingRemainder(dividingBy: step))
            }
        }
        if let text, let title = np.title, let change = Marquee.nextChange(title, width: text.width - 2, clock: now - a.titleSince) {
            next = min(next, change)
        }
        return max(minimum, next + 0.002)
    }
}

