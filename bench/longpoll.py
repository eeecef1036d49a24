"""Long-poll fan-out on loopback: N concurrent polls held on `musit-tui --serve`, one event
wakes them all; prints delivery latency p50/p99 (from the request that published the event
to each poll's answer) and the server's peak RSS.

usage: longpoll.py MUSIT_BINARY N [N...]
"""
import asyncio, json, os, resource, socket, statistics, subprocess, sys, tempfile, time, urllib.request

binary, counts = sys.argv[1], [int(n) for n in sys.argv[2:]]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def call(port, method, path, body=None, token=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=json.dumps(body).encode() if body is not None else None)
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        data = r.read()
        return json.loads(data) if data else None


async def poll(port, token, cursor, ready, results):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /api/v1/events?cursor={cursor}&timeout=60 HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    ready.append(1)
    await reader.read()  # until the server closes: the whole answer
    results.append(time.monotonic())
    writer.close()


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0


async def run(n):
    data = tempfile.mkdtemp()
    port = free_port()
    server = subprocess.Popen([binary, "--serve", "--port", str(port), "--data", data],
                              env={**os.environ, "MUSIT_BCRYPT_COST": "4"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                call(port, "GET", "/healthz")
                break
            except Exception:
                time.sleep(0.1)
        a = call(port, "POST", "/api/v1/auth/register", {"username": "alice", "password": "correct horse"})
        b = call(port, "POST", "/api/v1/auth/register", {"username": "bob", "password": "correct horse"})
        call(port, "POST", "/api/v1/friends/requests", {"username": "bob"}, a["accessToken"])
        call(port, "POST", "/api/v1/friends/requests/alice/accept", None, b["accessToken"])
        cursor = call(port, "GET", "/api/v1/events?timeout=0", None, b["accessToken"])["cursor"]
        rss_idle = peak_rss_mb(server.pid)
        ready, results = [], []
        tasks = [asyncio.create_task(poll(port, b["accessToken"], cursor, ready, results)) for _ in range(n)]
        while len(ready) < n:
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0 + n / 5000)  # let the server take every request and hold it
        t0 = time.monotonic()
        await asyncio.to_thread(call, port, "POST", "/api/v1/messages",
                                {"to": "bob", "body": "ping", "clientId": "bench"}, a["accessToken"])
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=120)
        lat = sorted((t - t0) * 1000 for t in results)
        p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99) - 1]
        print(f"  {n:6d} pollers: delivery p50 {p50:7.1f} ms, p99 {p99:7.1f} ms, max {lat[-1]:7.1f} ms; "
              f"server peak RSS {peak_rss_mb(server.pid):.0f} MB (idle {rss_idle:.0f} MB)   (target p99 < 50 ms at 10,000)")
    finally:
        server.terminate()
        server.wait()


print("== long-poll fan-out on loopback (one event wakes N held polls)")
for n in counts:
    asyncio.run(run(n))
