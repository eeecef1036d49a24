"""What two `--serve` instances over one PostgreSQL (MUSIT_DATABASE_URL) must agree on, besides
the event log: presence, the listeners-now statistic and the login throttle.

- A track announced on A is what B's friends list shows, and B's admin statistics count its
  listener; a pause announced on B is what A shows.
- A user who starts polling gets friends one "came online" event, though the polls go to
  both instances.
- Presence updates sprayed over both instances as fast as a client can send them, for
  several rounds: the last presence event friends get carries the last track sent.
- 40 wrong passwords at once for one account from one address, half on each instance:
  exactly 5 are checked (401), the rest refused (429), and the owner then waits on both.
- Behind a trusted proxy (MUSIT_TRUSTED_PROXIES) the throttle counts the address the proxy
  names in X-Forwarded-For; from anyone else, X-Forwarded-For is ignored.
"""
import threading
import time

from common import Client, Server, befriend, check, finish, register


def friend(port, token, name):
    _, lst = Client(port, token).request("GET", "/api/v1/friends")
    return next((f for f in lst["friends"] if f["user"]["username"] == name), None)


def events(port, token, cursor):
    _, page = Client(port, token).request("GET", "/api/v1/events?cursor=%d&timeout=0" % cursor)
    return page["events"], page["cursor"]


def login(port, name, password, headers=None):
    return Client(port).request("POST", "/api/v1/auth/login", {"username": name, "password": password},
                                headers=headers)[0]


def main():
    env = {"MUSIT_LOG_LEVEL": "notice"}
    a, b = Server(extra_env=env).start(), Server(extra_env=dict(env, MUSIT_TRUSTED_PROXIES="127.0.0.1"))
    b.start()
    try:
        admin = register(a.port, "padmin")  # the first user is the admin
        alice, bob = register(a.port, "palice"), register(b.port, "pbob")
        befriend(a.port, alice, "pbob", bob, "palice")
        track = {"title": "Shared", "artist": "Both", "state": "playing", "position": 1.0, "duration": 100.0}
        Client(a.port, alice).request("PUT", "/api/v1/presence", track)
        seen = friend(b.port, bob, "palice")
        _, stats = Client(b.port, admin).request("GET", "/api/v1/admin/stats")
        check(seen and seen["online"] and (seen.get("nowPlaying") or {}).get("title") == "Shared" and stats["listenersNow"] == 1,
              "a track announced on A: B shows it (%s) and counts its listener (%d)"
              % (seen and seen.get("nowPlaying"), stats["listenersNow"]))
        Client(b.port, alice).request("PUT", "/api/v1/presence", dict(track, state="paused"))
        seen = friend(a.port, bob, "palice")
        _, stats = Client(a.port, admin).request("GET", "/api/v1/admin/stats")
        check(seen and (seen.get("nowPlaying") or {}).get("state") == "paused" and stats["listenersNow"] == 0,
              "a pause announced on B: A shows it (%s) and counts no listener (%d)"
              % (seen and seen.get("nowPlaying"), stats["listenersNow"]))

        # Carol comes online by polling both instances in turn.
        carol = register(a.port, "pcarol")
        befriend(a.port, bob, "pcarol", carol, "pbob")
        _, cursor = events(a.port, bob, 0)
        for i in range(6):
            Client((a, b)[i % 2].port, carol).request("GET", "/api/v1/events?cursor=0&timeout=0")
        got, cursor = events(a.port, bob, cursor)
        online = [e for e in got if e["kind"] == "presence" and e.get("user") == "pcarol"]
        check(len(online) == 1, "carol polls A and B in turn: her friend gets %d came-online event(s), not 1" % len(online)
              if len(online) != 1 else "carol polls A and B in turn: her friend gets one came-online event")

        # Presence sprayed over both instances; friends must end on the last track.
        wrong = []
        for rnd in range(6):
            stop = 40 + rnd

            def spray(port, n0):
                c = Client(port, alice)
                for n in range(n0, stop, 2):
                    c.request("PUT", "/api/v1/presence", dict(track, title="t%d" % n, position=float(n)))

            # Each instance's updates are in order; the last one sent overall is t{stop-1}.
            threads = [threading.Thread(target=spray, args=((a, b)[k].port, k)) for k in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            last = "t%d" % (stop - 1 - (stop - 1) % 2)  # thread 0 sends the even ones
            last_other = "t%d" % (stop - 1 if (stop - 1) % 2 else stop - 2)
            # The two threads race: the newest state is whatever was stored last; wait for the
            # held updates to go out (one per 2 s per instance), then compare.
            time.sleep(4.5)
            stored = friend(a.port, bob, "palice")["nowPlaying"]["title"]
            got, cursor = events(b.port, bob, cursor)
            titles = [e["nowPlaying"]["title"] for e in got if e["kind"] == "presence" and e.get("nowPlaying")
                      and e.get("user") == "palice"]
            if not titles or titles[-1] != stored or stored not in (last, last_other):
                wrong.append("round %d: stored %s, last event %s" % (rnd, stored, titles[-1:] or None))
        check(not wrong, "presence sprayed over both instances, 6 rounds: friends end on the stored state%s"
              % ("" if not wrong else " (%s)" % "; ".join(wrong)))

        # Parallel guesses spread over both instances: exactly 5 reach bcrypt.
        register(a.port, "pvictim")
        codes = []
        lock = threading.Lock()

        def guess(port):
            s = login(port, "pvictim", "wrong password")
            with lock:
                codes.append(s)

        threads = [threading.Thread(target=guess, args=((a, b)[i % 2].port,)) for i in range(40)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after = [login(p, "pvictim", "wrong password") for p in (a.port, b.port)]
        check(codes.count(401) == 5 and codes.count(429) == 35 and after == [429, 429],
              "40 parallel wrong passwords over A and B: %d checked, %d refused; then %s (want 5, 35, [429, 429])"
              % (codes.count(401), codes.count(429), after))

        # B trusts the proxy on 127.0.0.1: the address it names is the one counted.
        register(a.port, "pproxied")
        # The client claims 10.7.7.7; the proxy appended the address it saw, the one counted.
        first = [login(b.port, "pproxied", "nope", {"X-Forwarded-For": "10.7.7.%d, 10.0.0.1" % i}) for i in range(6)]
        other = login(b.port, "pproxied", "nope", {"X-Forwarded-For": "10.0.0.2"})
        check(first == [401] * 5 + [429] and other == 401,
              "behind a trusted proxy, 10.0.0.1 is stopped after 5 (%s) and 10.0.0.2 is not (%d)" % (first, other))
        register(a.port, "pspoof")
        spoofed = [login(a.port, "pspoof", "nope", {"X-Forwarded-For": "10.1.0.%d" % i}) for i in range(6)]
        check(spoofed == [401] * 5 + [429],
              "without a trusted proxy, X-Forwarded-For changes nothing: %s" % spoofed)
    finally:
        a.stop()
        b.stop()
    finish("shared state")


if __name__ == "__main__":
    main()
