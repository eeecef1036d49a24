"""Cross-instance delivery: 1,000 users each hold a long-poll on instance B; a song deleted
through instance A writes an event to every user's log; the time from the DELETE to each
poll's answer on B, over several rounds, as p50/p99. Target: p99 under 50 ms.

usage: cross_delivery.py A_PORT B_PORT [USERS] [ROUNDS]
(two instances over one PostgreSQL, e.g. from scripts/cluster.sh: its a.port and b.port)"""
import http.client
import json
import os
import selectors
import socket
import statistics
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


def main():
    a, b = int(sys.argv[1]), int(sys.argv[2])
    users = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 5
    mp3 = open(os.path.join(os.path.dirname(__file__), "..", ".build", "test-audio", "sine440.mp3"), "rb").read()
    tag = "x%d" % int(time.time())
    tokens = [call(a, "POST", "/api/v1/auth/register", {"username": "%s-%d" % (tag, i), "password": "correct horse"})[1]["accessToken"]
              for i in range(users)]
    owner = tokens[0]
    latencies = []
    for r in range(rounds):
        s, song = call(a, "POST", "/api/v1/songs", mp3 + b"TAG" + (tag + str(r)).encode().ljust(125, b"\0"), owner)
        assert s == 201, s
        # Every user's cursor, after the upload's event.
        cursors = []
        for t in tokens:
            cursor = 0
            while True:
                _, page = call(b, "GET", "/api/v1/events?cursor=%d&timeout=0" % cursor, token=t)
                if not page["events"]:
                    break
                cursor = page["cursor"]
            cursors.append(cursor)
        sel = selectors.DefaultSelector()
        for t, cursor in zip(tokens, cursors):
            sock = socket.create_connection(("127.0.0.1", b))
            sock.sendall(("GET /api/v1/events?cursor=%d&timeout=30 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n"
                          % (cursor, t)).encode())
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        time.sleep(1.0)  # every poll held on b
        start = time.perf_counter()
        s, _ = call(a, "DELETE", "/api/v1/songs/%d" % song["id"], token=owner, raw=True)
        assert s == 204, s
        pending = users
        while pending:
            for key, _ in sel.select(timeout=35):
                data = key.fileobj.recv(65536)
                if data.startswith(b"HTTP/1.1 200") or not data:
                    latencies.append(time.perf_counter() - start)
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    pending -= 1
        sel.close()
    latencies.sort()
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(len(latencies) * 0.99) - 1] * 1000
    print("== cross-instance delivery: %d polls held on B, an event for each committed through A, %d rounds" % (users, rounds))
    print("  p50 %.1f ms, p99 %.1f ms, max %.1f ms (target: p99 < 50 ms)" % (p50, p99, latencies[-1] * 1000))


if __name__ == "__main__":
    main()
