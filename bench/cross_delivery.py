"""Cross-instance delivery: 1,000 users each hold a long-poll on instance B; messages are
sent through instance A, one at a time, each to one of them; the time from just before the
send to the message's arrival in that user's poll on B, as p50/p99. Target: p99 < 50 ms.
Then one event for every user: a song deleted through A, timed to its answer (the commit
that writes every user's log) and to the last of the 1,000 polls answered on B.

usage: cross_delivery.py A_PORT B_PORT [USERS] [MESSAGES]
(two instances over one PostgreSQL, e.g. from scripts/cluster.sh: its a.port and b.port)"""
import http.client
import json
import random
import selectors
import os
import socket
import statistics
import subprocess
import tempfile
import sys
import time


def call(port, method, path, body=None, token=None, raw=False):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    h = {"content-type": "application/json"}
    if token:
        h["authorization"] = "Bearer " + token
    data = body if isinstance(body, (bytes, bytearray)) or body is None else json.dumps(body).encode()
    if isinstance(body, (bytes, bytearray)):
        h["content-type"] = "audio/mpeg"
    c.request(method, path, body=data, headers=h)
    r = c.getresponse()
    payload = r.read()
    c.close()
    return r.status, (payload if raw else (json.loads(payload) if payload else None))


def hold(sel, b, user, token, cursor):
    sock = socket.create_connection(("127.0.0.1", b))
    sock.sendall(("GET /api/v1/events?cursor=%d&timeout=60 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                  % (cursor, token)).encode())
    sock.setblocking(False)
    sel.register(sock, selectors.EVENT_READ, user)


def cursor_of(b, token):
    cursor = 0
    while True:
        _, page = call(b, "GET", "/api/v1/events?cursor=%d&timeout=0" % cursor, token=token)
        if not page["events"]:
            return cursor
        cursor = page["cursor"]


def read_page(sock):
    """The JSON page of one answered poll (Content-Length framed)."""
    sock.setblocking(True)
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(body) < length:
        body += sock.recv(65536)
    return json.loads(body)


def main():
    a, b = int(sys.argv[1]), int(sys.argv[2])
    users = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    messages = int(sys.argv[4]) if len(sys.argv) > 4 else 200
    tag = "x%d" % int(time.time())
    names = ["%s-%d" % (tag, i) for i in range(users + 1)]
    tokens = [call(a, "POST", "/api/v1/auth/register", {"username": n, "password": "correct horse"})[1]["accessToken"]
              for n in names]
    sender, sender_name = tokens[0], names[0]
    # Each asks the sender, who accepts: a user's own friend requests are rate-limited.
    for n, t in zip(names[1:], tokens[1:]):
        call(b, "POST", "/api/v1/friends/requests", {"username": sender_name}, t)
        call(a, "POST", "/api/v1/friends/requests/%s/accept" % n, None, sender)
    sel = selectors.DefaultSelector()
    for i in range(1, users + 1):
        hold(sel, b, i, tokens[i], cursor_of(b, tokens[i]))
    time.sleep(1.0)  # every poll held on b
    latencies = []
    rng = random.Random(7)
    for k in range(messages):
        user = rng.randrange(1, users + 1)
        start = time.perf_counter()
        s, _ = call(a, "POST", "/api/v1/messages", {"to": names[user], "clientId": "m%d" % k, "body": "hop"}, sender)
        assert s in (200, 201), s
        done = False
        while not done:
            for key, _ in sel.select(timeout=10):
                page = read_page(key.fileobj)
                if key.data == user:
                    latencies.append(time.perf_counter() - start)
                    done = True
                sel.unregister(key.fileobj)
                key.fileobj.close()
                hold(sel, b, key.data, tokens[key.data], page["cursor"])
    # One event for everyone: a song deleted (uploaded first; its own event answered too).
    tmp = tempfile.mkdtemp()
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "1", os.path.join(tmp, "t.wav"), "synth", "2", "sine", "440"], check=True)
    subprocess.run(["lame", "--quiet", "-b", "64", os.path.join(tmp, "t.wav"), os.path.join(tmp, "t.mp3")], check=True)
    with open(os.path.join(tmp, "t.mp3"), "rb") as f:
        s, song = call(a, "POST", "/api/v1/songs", f.read() + tag.encode(), sender)
    assert s == 201, (s, song)

    def drain(until, again=True):
        """Reads answered polls (and holds them `again`) until `until` of them were answered;
        the time of the last."""
        answered, last = set(), None
        while len(answered) < until:
            ready = sel.select(timeout=30)
            assert ready, "polls left unanswered"
            for key, _ in ready:
                page = read_page(key.fileobj)
                answered.add(key.data)
                last = time.perf_counter()
                sel.unregister(key.fileobj)
                key.fileobj.close()
                if again:
                    hold(sel, b, key.data, tokens[key.data], page["cursor"])
        return last

    drain(users)
    time.sleep(1.0)
    start = time.perf_counter()
    s, _ = call(a, "DELETE", "/api/v1/songs/%d" % song["id"], None, sender)
    committed = time.perf_counter()
    assert s == 204, s
    last = drain(users, again=False)  # the answers only: new polls would compete with them
    sel.close()
    broadcast = (committed - start, last - start)
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000
    print("== cross-instance delivery: %d polls held on B; %d messages sent through A, one at a time, each to one of them"
          % (users, messages))
    print("  send to arrival: p50 %.1f ms, p99 %.1f ms, max %.1f ms (target: p99 < 50 ms)" % (p50, p99, latencies[-1] * 1000))
    print("  one event for all %d users (a song deleted through A): answered in %.0f ms, last poll on B answered at %.0f ms"
          % (users + 1, broadcast[0] * 1000, broadcast[1] * 1000))


if __name__ == "__main__":
    main()
