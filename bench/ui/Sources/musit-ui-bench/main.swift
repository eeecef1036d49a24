// Key → frame cost (reduce + render + diff) and a 1,000,000-row queue scrolled end to end.
import Foundation
import MusitRender
import MusitViewModel

func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

func rssKB() -> Int {
    let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
    for line in status.split(separator: "\n") where line.hasPrefix("VmRSS:") {
        return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
    }
    return 0
}

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    return s[min(s.count - 1, Int(Double(s.count - 1) * p))]
}

/// A source that makes rows on demand, answered synchronously through a queue of requests.
final class Harness {
    var store: Store!
    var pending: [QueuePageRequest] = []
    let rows: Int
    let renderer = Renderer(unicode: true)
    var last: ScreenBuffer?

    init(width: Int, height: Int, rows: Int) {
        self.rows = rows
        store = Store(state: AppState(width: width, height: height)) { [unowned self] e in
            if case .fetch(let r) = e { self.pending.append(r) }
        }
        store.send(.resize(width: width, height: height))
        pump()
        var np = NowPlaying()
        np.state = .playing; np.title = "Benchmark Track"; np.artist = "Musit"; np.duration = 240; np.position = 61
        np.index = 3
        store.send(.nowPlaying(np))
    }

    func pump() {
        while !pending.isEmpty {
            let r = pending.removeFirst()
            let end = min(rows, r.offset + r.limit)
            let items = r.offset < end ? (r.offset..<end).map {
                QueueItem(index: $0, title: "Track \($0) — 東京 Night Drive", detail: "Album \($0 / 12)", duration: Double(180 + $0 % 120))
            } : []
            store.send(.pageLoaded(QueuePage(request: r, items: items, total: nil, hasMore: end < rows)))
        }
    }

    /// One key to one drawn frame: reduce, render, diff. Returns nanoseconds.
    func frame(_ key: Key) -> UInt64 {
        let t0 = now()
        store.send(.key(key))
        pump()
        let b = renderer.render(store.state)
        let runs = b.diff(from: last)
        last = b
        let t1 = now()
        precondition(runs.count >= 0)
        return t1 - t0
    }
}

print("== key → frame at 200x60 (reduce + render + diff), 20,000 keys")
let h = Harness(width: 200, height: 60, rows: 5_000)
let keys: [Key] = [.down, .down, .down, .up, .pageDown, .char(">"), .char("<"), .tab, .backTab, .down, .char("}"), .char("{")]
for i in 0..<2_000 { _ = h.frame(keys[i % keys.count]) }  // warm up
var times: [Double] = []
for i in 0..<20_000 { times.append(Double(h.frame(keys[i % keys.count])) / 1e6) }
print(String(format: "  median %.3f ms   p99 %.3f ms   max %.3f ms   (target p99 < 5 ms)",
             percentile(times, 0.5), percentile(times, 0.99), times.max()!))

print("\n== a 1,000,000-row queue scrolled end to end with PgDn at 200x60")
let big = Harness(width: 200, height: 60, rows: 1_000_000)
var frameTimes: [Double] = []
var rss: [(Int, Int)] = []
var steps = 0
while big.store.state.queue.cursor < 999_999 {
    frameTimes.append(Double(big.frame(.pageDown)) / 1e6)
    steps += 1
    if steps % 4_000 == 1 { rss.append((big.store.state.queue.cursor, rssKB())) }
}
rss.append((big.store.state.queue.cursor, rssKB()))
let firstK = Array(frameTimes.prefix(1_000)), lastK = Array(frameTimes.suffix(1_000))
print("  \(steps) page-downs; pages held at the end: \(big.store.state.queue.pages.count)")
print(String(format: "  frame median: first 1000 %.3f ms, last 1000 %.3f ms (ratio %.2f)",
             percentile(firstK, 0.5), percentile(lastK, 0.5), percentile(lastK, 0.5) / percentile(firstK, 0.5)))
print("  RSS along the way: " + rss.map { "row \($0.0): \($0.1 / 1024) MB" }.joined(separator: ", "))
