import MusitAudio
import MusitViewModel

/// What the UI loop is sent from other threads: actions, a bare wake (the loop reads the
/// player's status whenever it wakes), and a termination signal.
public enum UIMessage: Sendable {
    case action(Action)
    case wake
    case quitSignal
}

/// The UI loop's mailbox: the same type as the audio engine's (`Mailbox`).
public typealias Inbox = Mailbox<UIMessage>

extension Mailbox where Message == UIMessage {
    public func post(_ action: Action) { post(.action(action)) }

    /// Wakes the loop with nothing to deliver.
    public func wake() { post(.wake) }
}
