import Hummingbird
import NIOConcurrencyHelpers
import NIOCore

/// Tells a held long-poll that its client went away, so the poll is released at once and
/// its memory freed, instead of staying held until its timeout.
///
/// Hummingbird does not cancel a handler when the connection closes, and its
/// `consumeWithCancellationOnInboundClose` closes the connection after the response, which
/// would cost every poller its keep-alive. This handler sits in each connection's pipeline
/// and only watches: a FIN (input closed; the server allows half-closure) or the channel
/// going inactive (RST, close) fires the signal. Nothing it sees is consumed.
final class ClientDisconnectHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    let signal = ClientDisconnectSignal()

    func handlerAdded(context: ChannelHandlerContext) {
        ClientDisconnectSignal.register(signal, for: context.channel)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        ClientDisconnectSignal.unregister(context.channel)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { signal.fire() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        signal.fire()
        ClientDisconnectSignal.unregister(context.channel)
        context.fireChannelInactive()
    }
}

/// One connection's "the client is gone" signal.
final class ClientDisconnectSignal: Sendable {
    private struct State {
        var gone = false
        var next = 0
        var callbacks: [Int: @Sendable () -> Void] = [:]
    }

    private let state = NIOLockedValueBox(State())

    var isGone: Bool { state.withLockedValue { $0.gone } }

    /// Each open connection's signal, by channel: a poll finds its own without a trip to
    /// the event loop (the pipeline may only be read there).
    private static let byChannel = NIOLockedValueBox([ObjectIdentifier: ClientDisconnectSignal]())

    fileprivate static func register(_ signal: ClientDisconnectSignal, for channel: any Channel) {
        byChannel.withLockedValue { $0[ObjectIdentifier(channel)] = signal }
    }

    fileprivate static func unregister(_ channel: any Channel) {
        byChannel.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// The signal of `channel`'s connection: a fired one when it has closed already; nil
    /// when it has none (the router run without a server, in tests).
    static func of(_ channel: any Channel) -> ClientDisconnectSignal? {
        if let signal = byChannel.withLockedValue({ $0[ObjectIdentifier(channel)] }) { return signal }
        guard !channel.isActive else { return nil }
        let gone = ClientDisconnectSignal()
        gone.fire()
        return gone
    }

    /// Calls `callback` once, on the event loop, when the client goes away (at once if it
    /// has); returns a handle for `remove`. Remove it when the request ends, so a
    /// kept-alive connection gathers no callbacks.
    func onDisconnect(_ callback: @escaping @Sendable () -> Void) -> Int? {
        let id: Int? = state.withLockedValue { s in
            if s.gone { return nil }
            defer { s.next += 1 }
            s.callbacks[s.next] = callback
            return s.next
        }
        if id == nil { callback() }
        return id
    }

    func remove(_ id: Int?) {
        guard let id else { return }
        state.withLockedValue { _ = $0.callbacks.removeValue(forKey: id) }
    }

    fileprivate func fire() {
        let callbacks = state.withLockedValue { s -> [@Sendable () -> Void] in
            if s.gone { return [] }
            s.gone = true
            defer { s.callbacks = [:] }
            return Array(s.callbacks.values)
        }
        for c in callbacks { c() }
    }
}
