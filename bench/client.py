"""Two real players (tmux) and one backend: first audio, chat latency, streaming RSS."""
import json, os, select, shutil, socket, statistics, subprocess, sys, tempfile, threading, time, urllib.request

musit, out = sys.argv[1], sys.argv[2]
work = tempfile.mkdtemp(prefix="musit-client-bench-")
asound = os.path.join(os.path.dirname(os.path.abspath(__file__)), "asoundrc")
sock = f"musit-bench-{os.getpid()}"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


port = free_port()
base = f"http://127.0.0.1:{port}"
server = subprocess.Popen([musit, "--serve", "--port", str(port), "--data", f"{work}/data"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env=dict(os.environ, MUSIT_BCRYPT_COST="4"))


def api(method, path, body=None, token=None, data=None, ctype="application/json"):
    req = urllib.request.Request(base + path, method=method,
                                 data=data if data is not None else (json.dumps(body).encode() if body is not None else None))
    if body is not None or data is not None:
        req.add_header("Content-Type", ctype)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=120) as r:
        text = r.read()
        return json.loads(text) if text else None


for _ in range(100):
    try:
        api("GET", "/healthz")
        break
    except Exception:
        time.sleep(0.1)

users = {}
for name in ["alice", "bob"]:
    users[name] = api("POST", "/api/v1/auth/register", {"username": name, "password": "correct horse"})
api("POST", "/api/v1/friends/requests", {"username": "bob"}, users["alice"]["accessToken"])
api("POST", "/api/v1/friends/requests/alice/accept", None, users["bob"]["accessToken"])
songs = {}
for label, path in [("3 MB", f"{out}/track3mb.mp3"), ("100 MB", f"{out}/track100mb.mp3")]:
    with open(path, "rb") as f:
        songs[label] = api("POST", "/api/v1/songs", token=users["alice"]["accessToken"], data=f.read(), ctype="audio/mpeg")


def tmux(*args):
    return subprocess.run(["tmux", "-L", sock] + list(args), capture_output=True, text=True).stdout


def player(name, device, extra=()):
    """A signed-in player: its session file is written as the client would have written it."""
    home = f"{work}/{name}-{time.monotonic_ns()}"
    os.makedirs(f"{home}/config/musit")
    tokens = api("POST", "/api/v1/auth/login", {"username": name, "password": "correct horse"})
    with open(f"{home}/config/musit/session.json", "w") as f:
        json.dump({"server": base, "user": tokens["user"], "accessToken": tokens["accessToken"],
                   "refreshToken": tokens["refreshToken"], "expiresAt": time.time() + 800, "cursor": 0}, f)
    os.chmod(f"{home}/config/musit/session.json", 0o600)
    session = f"{name}{time.monotonic_ns()}"
    env = ["-e", f"ALSA_CONFIG_PATH={asound}", "-e", f"XDG_CONFIG_HOME={home}/config", "-e", f"XDG_DATA_HOME={home}/data",
           "-e", "LANG=C.UTF-8", "-e", "TERM=tmux-256color"]
    cmd = " ".join([musit, "--device", device, "--server", base] + list(extra))
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", *env, cmd + "; sleep 60")
    wait_for(session, f"{name} · online")
    return session


def screen(session):
    return tmux("capture-pane", "-p", "-t", session)


def wait_for(session, text, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in screen(session):
            return time.monotonic()
        time.sleep(0.002)
    raise SystemExit(f"timed out waiting for {text!r} on {session}:\n{screen(session)}")


def pid_of(session):
    shell = tmux("display-message", "-p", "-t", session, "#{pane_pid}").strip()
    children = open(f"/proc/{shell}/task/{shell}/children").read().split()
    return int(children[0]) if children else int(shell)


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


try:
    # 1. play -> first audio, streamed over loopback.
    fifo = f"{work}/pcm"
    os.mkfifo(fifo)
    fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    arrivals = []
    stop = threading.Event()

    def drain():
        while not stop.is_set():
            ready, _, _ = select.select([fd], [], [], 0.01)
            if ready:
                try:
                    if os.read(fd, 1 << 16):
                        arrivals.append(time.monotonic())
                except BlockingIOError:
                    pass

    threading.Thread(target=drain, daemon=True).start()
    a = player("alice", f"benchfile:FILE={fifo}", ["--pace"])
    wait_for(a, "0:00 / 1:15")  # the 3 MB track is listed first and cued
    firsts = []
    for _ in range(9):
        tmux("send-keys", "-t", a, "S")
        time.sleep(0.6)
        quiet = time.monotonic()
        tmux("send-keys", "-t", a, "Enter")
        t0 = time.monotonic()
        deadline = t0 + 5
        while time.monotonic() < deadline and not any(t > quiet for t in arrivals):
            time.sleep(0.001)
        later = [t for t in arrivals if t > quiet]
        if later:
            firsts.append((later[0] - t0) * 1000)
    stop.set()
    print(f"\n== play -> first audio, streamed over loopback (Enter in the TUI to PCM at the device), {len(firsts)} runs")
    print(f"  median {statistics.median(firsts):.1f} ms, max {max(firsts):.1f} ms  (target < 150 ms)")
    tmux("kill-session", "-t", a)

    # 2. chat A -> B, drawn.
    a = player("alice", "benchnull")
    b = player("bob", "benchnull")
    tmux("send-keys", "-t", b, ":")
    tmux("send-keys", "-t", b, "-l", "chat alice")
    tmux("send-keys", "-t", b, "Enter")
    wait_for(b, "Chat: alice")
    tmux("send-keys", "-t", a, ":")
    tmux("send-keys", "-t", a, "-l", "chat bob")
    tmux("send-keys", "-t", a, "Enter")
    wait_for(a, "Chat: bob")
    tmux("send-keys", "-t", a, "Enter")  # compose
    lat = []
    for i in range(60):
        text = f"ping-{i:03d}-{os.getpid()}"
        tmux("send-keys", "-t", a, "-l", text)
        t0 = time.monotonic()
        tmux("send-keys", "-t", a, "Enter")
        seen = wait_for(b, text)
        lat.append((seen - t0) * 1000)
        time.sleep(0.05)
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
    print(f"\n== chat: Enter on A -> drawn on B (long-poll, tmux capture polling every 2 ms), {len(lat)} messages")
    print(f"  p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms  (target p99 < 100 ms)")
    tmux("kill-session", "-t", a)
    tmux("kill-session", "-t", b)

    # 3. client RSS streaming a 100 MB track vs a 3 MB one (unpaced: the whole track streams).
    print("\n== client RSS while streaming (unpaced null device: the whole track goes through)")
    for label, row in [("3 MB", 1), ("100 MB", 2)]:
        s = player("alice", "benchnull")
        pid = pid_of(s)
        wait_for(s, "1:15")
        idle = rss_kb(pid)
        if row == 2:
            tmux("send-keys", "-t", s, "j")
        tmux("send-keys", "-t", s, "Enter")
        peak, t0 = idle, time.monotonic()
        song = songs[label]
        # While this track is the one playing (the queue moves on after it), at most 120 s.
        d = int(song["duration"])
        shown = f"/ {d // 60}:{d % 60:02d}"
        time.sleep(0.3)
        while time.monotonic() - t0 < 120:
            peak = max(peak, rss_kb(pid))
            now = screen(s)
            if not ("▶ playing" in now and shown in now):
                break
            time.sleep(0.05)
        took = time.monotonic() - t0
        print(f"  {label:6s} ({song['bytes'] / 1e6:.1f} MB, {song['duration'] / 60:.1f} min): idle {idle / 1024:.1f} MB, "
              f"peak {peak / 1024:.1f} MB while streaming it end to end in {took:.1f} s")
        tmux("kill-session", "-t", s)
finally:
    tmux("kill-server")
    server.terminate()
    server.wait()
    shutil.rmtree(work, ignore_errors=True)
