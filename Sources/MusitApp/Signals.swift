import Foundation

/// SIGINT, SIGTERM and SIGHUP end the main loop (which restores the terminal).
///
/// The signals are blocked in every thread (`blockTerminationSignals()` runs first thing
/// in main, before any thread exists, so all threads inherit the mask) and one thread
/// takes them with sigwait(). No handler runs in signal context, and no other thread
/// (the audio thread, ncurses) can swallow them.
public final class SignalWatcher: Sendable {
    public static let signals = [SIGINT, SIGTERM, SIGHUP]

    public static func blockTerminationSignals() {
        var set = signalSet()
        pthread_sigmask(SIG_BLOCK, &set, nil)
        // A parent may have left them ignored, and the kernel drops ignored signals even
        // when blocked: restore the default action (it never runs while they are blocked).
        for sig in signals { signal(sig, SIG_DFL) }
    }

    private static func signalSet() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in signals { sigaddset(&set, sig) }
        return set
    }

    /// Calls `handler` on the signal thread for each termination signal.
    public init(_ handler: @escaping @Sendable () -> Void) {
        Self.blockTerminationSignals()
        let thread = Thread {
            var set = Self.signalSet()
            while true {
                var sig: Int32 = 0
                if sigwait(&set, &sig) == 0 { handler() }
            }
        }
        thread.name = "musit-signals"
        thread.start()
    }
}
