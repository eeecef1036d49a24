import Foundation
@testable import MusitApp
import MusitViewModel
import Testing

@Suite("The UI loop's inbox")
struct InboxTests {
    @Test("many threads posting while the loop sleeps and wakes: every message arrives once, in order, and no wake is left over")
    func hammer() throws {
        let inbox = Inbox()
        let posters = 4, each = 3000
        let done = DispatchGroup()
        for p in 0..<posters {
            done.enter()
            Thread {
                var seed = UInt64(p + 1)
                for i in 0..<each {
                    inbox.post(.tick(Double(p * 1_000_000 + i)))
                    seed = seed &* 6364136223846793005 &+ 1442695040888963407
                    // Mostly a pause about as long as the loop's waits, so that waits often
                    // time out just as a post comes.
                    if seed >> 62 != 0 { usleep(useconds_t(50 + seed >> 55 & 0x1FF)) }
                }
                done.leave()
            }.start()
        }
        var next = [Int](repeating: 0, count: posters)
        var received = 0, round = 0, early = 0
        let deadline = Date().addingTimeInterval(60)
        while received < posters * each && Date() < deadline {
            round += 1
            // Timeouts from none to 0.4 ms: some waits end on a post, some time out, some
            // time out just as a post comes.
            let timeout = Double(round % 5) * 0.0001
            let start = DispatchTime.now().uptimeNanoseconds
            let got = inbox.take(timeout: timeout)
            // Nothing came, yet the wait ended early: a wake left over from an earlier wait.
            if got.isEmpty && Double(DispatchTime.now().uptimeNanoseconds - start) < timeout * 0.9e9 { early += 1 }
            for message in got {
                guard case .action(.tick(let value)) = message else {
                    Issue.record("unexpected \(message)")
                    return
                }
                let p = Int(value) / 1_000_000, i = Int(value) % 1_000_000
                #expect(i == next[p], "poster \(p): got \(i), expected \(next[p])")
                next[p] = i + 1
                received += 1
            }
        }
        done.wait()
        #expect(received == posters * each, "received \(received) of \(posters * each)")
        #expect(next == [Int](repeating: each, count: posters))
        #expect(early == 0, "\(early) waits of \(round) ended early with nothing")
        // A wake owed by a post that came as a wait timed out was taken: the next sleep
        // lasts its whole time, each of several times.
        for _ in 0..<3 {
            let start = Date()
            #expect(inbox.take(timeout: 0.05).isEmpty)
            let slept = Date().timeIntervalSince(start)
            #expect(slept >= 0.04, "slept \(slept) s")
        }
    }

    @Test("a post wakes a sleeping loop at once, and a wait with nothing posted lasts its time")
    func wakesAndWaits() {
        let inbox = Inbox()
        for _ in 0..<20 {
            let posted = Date()
            Thread {
                usleep(2000)
                inbox.wake()
            }.start()
            let got = inbox.take(timeout: 10)
            let waited = Date().timeIntervalSince(posted)
            #expect(got.count == 1 && waited < 1, "\(got.count) messages after \(waited) s")
        }
        let start = Date()
        #expect(inbox.take(timeout: 0.1).isEmpty)
        #expect(Date().timeIntervalSince(start) >= 0.09)
    }
}
