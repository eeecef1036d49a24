"""Floods that used to fill other users' event logs or memory, against a live server:
friend request/cancel pairs, presence updates, and an events page of long messages."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, befriend, check, finish, register  # noqa: E402



def all_events(port, token):
    """Every event of the user, page by page, with each page's size in bytes."""
    c = Client(port, token)
    cursor, events, sizes = 0, [], []
    while True:
        s, raw = c.request("GET", "/api/v1/events?cursor=%d&timeout=0" % cursor, raw=True)
        assert s == 200, s
        import json
        page = json.loads(raw)
        sizes.append(len(raw))
        if not page["events"]:
            return events, sizes
        events += page["events"]
        cursor = page["cursor"]


def friend_flood(port):
    attacker = register(port, "flooder")
    victim = register(port, "floodvictim")
    c = Client(port, attacker)
    start = time.time()
    pairs = limited = 0
    retry_after = None
    while time.time() - start < 6 and pairs < 10000:
        s, _ = c.request("POST", "/api/v1/friends/requests", {"username": "floodvictim"})
        s2, _ = c.request("DELETE", "/api/v1/friends/floodvictim")
        pairs += 1
        if 429 in (s, s2):
            limited += 1
    s, _ = c.request("POST", "/api/v1/friends/requests", {"username": "floodvictim"}, raw=True)
    if c.conn is not None:
        pass
    events, _ = all_events(port, victim)
    check(limited > 0 and len(events) <= 40,
          "%d request/cancel pairs in 6 s: %d refused with 429, the victim's log holds %d events (at most 40)"
          % (pairs, limited, len(events)))
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/api/v1/friends/requests", body=b'{"username":"floodvictim"}',
                 headers={"Authorization": "Bearer " + attacker, "Content-Type": "application/json"})
    r = conn.getresponse()
    r.read()
    retry_after = r.getheader("Retry-After")
    check(r.status == 429 and retry_after is not None and 1 <= int(retry_after) <= 10,
          "the 429 says when to retry (%d, Retry-After %s)" % (r.status, retry_after))


def presence_flood(port):
    dj = register(port, "presencedj")
    fan = register(port, "presencefan")
    befriend(port, dj, "presencefan", fan, "presencedj")
    _, sizes = all_events(port, fan)
    before, _ = all_events(port, fan)
    c = Client(port, dj)
    statuses = set()
    start = time.time()
    for i in range(300):
        s, _ = c.request("PUT", "/api/v1/presence", {"state": "playing", "title": "track %d" % i, "artist": "x"})
        statuses.add(s)
    took = time.time() - start
    time.sleep(2.5)
    after, _ = all_events(port, fan)
    fresh = [e for e in after[len(before):] if e["kind"] == "presence" and e.get("nowPlaying")]
    bound = 5 + int(took / 2) + 2  # the burst of 5, then one per 2 s
    check(statuses == {204}, "300 presence updates in %.1f s are all accepted (%s)" % (took, sorted(statuses)))
    check(1 <= len(fresh) <= bound, "they reach the friend as %d events (at most %d: 5 at once, then one per 2 s)" % (len(fresh), bound))
    check(fresh and fresh[-1]["nowPlaying"]["title"] == "track 299",
          "the friend ends on the newest state (%s)" % (fresh[-1]["nowPlaying"]["title"] if fresh else None))
    s, body = Client(port, dj).request("GET", "/api/v1/users/presencedj")
    s, _ = c.request("PUT", "/api/v1/presence", {"state": "playing", "title": "t" * 1_500_000})
    check(s == 400, "a 1.5 MB presence title is refused (%d)" % s)


def page_cap(port):
    a = register(port, "longwriter")
    b = register(port, "longreader")
    befriend(port, a, "longreader", b, "longwriter")
    c = Client(port, a)
    # One 'e' under 7,990 combining accents: one character, 15,981 UTF-8 bytes (the limit
    # is 16,000), so 100 of them are 1.6 MB of events.
    body = "e" + "\u0301" * 7990
    sent = 0
    for i in range(100):
        s, m = c.request("POST", "/api/v1/messages", {"to": "longreader", "clientId": "long-%d" % i, "body": body})
        if s in (200, 201):
            sent += 1
    events, sizes = all_events(port, b)
    got = [e["message"]["clientId"] for e in events if e["kind"] == "chat.message" and e.get("message")]
    check(sent == 100, "100 long messages sent (%d)" % sent)
    check(max(sizes) <= (1 << 20) + 4096 and len(sizes) > 2,
          "events pages stay under 1 MiB (largest %d bytes, %d pages)" % (max(sizes), len(sizes)))
    check(got == ["long-%d" % i for i in range(100)], "paging through them gives each message once, in order (%d)" % len(got))


def main():
    server = Server().start()
    try:
        friend_flood(server.port)
        presence_flood(server.port)
        page_cap(server.port)
    finally:
        server.stop()
    finish("abuse")


if __name__ == "__main__":
    main()
