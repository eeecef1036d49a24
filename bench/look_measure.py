"""The look's cost: CPU per second of audio of the whole player (engine and UI) in tmux,
playing in real time (the benchpaced device) with cover, album colours, motion and the
visualizer on, with them off, and paused; cmus and mpg123 play the same file on the same
device beside it. Then the time from a track change to its cover on screen.

usage: look_measure.py MUSIT_BINARY OUT_DIR"""
import os, shutil, statistics, subprocess, sys, tempfile, time

musit, out = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
asound = os.path.join(here, "asoundrc")
tick = os.sysconf("SC_CLK_TCK")
WINDOW = 20.0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick


def thread_ns(pid):
    """Each thread's run time in nanoseconds (schedstat), or None where the kernel keeps none."""
    try:
        out = {}
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                out[t] = int(open(f"/proc/{pid}/task/{t}/schedstat").read().split()[0])
            except (OSError, ValueError, IndexError):
                pass
        return out or None
    except OSError:
        return None


class Tmux:
    def __init__(self, command, env):
        self.socket = f"musit-bench-{os.getpid()}-{time.monotonic_ns()}"
        args = ["new-session", "-d", "-s", "b", "-x", "120", "-y", "40"]
        for k, v in env.items():
            args += ["-e", f"{k}={v}"]
        self.run(args + [command + "; sleep 60"])

    def run(self, args):
        return subprocess.run(["tmux", "-L", self.socket] + args, capture_output=True, text=True).stdout

    def screen(self, colours=False):
        return self.run(["capture-pane", "-p", "-t", "b"] + (["-e"] if colours else []))

    def send(self, *keys):
        self.run(["send-keys", "-t", "b"] + list(keys))

    def program(self, name):
        shell = self.run(["display-message", "-p", "-t", "b", "#{pane_pid}"]).strip()
        for _ in range(100):
            for pid in open(f"/proc/{shell}/task/{shell}/children").read().split():
                if os.path.basename(os.readlink(f"/proc/{pid}/exe")).startswith(name):
                    return int(pid)
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not start")

    def wait(self, predicate, timeout=15, colours=False):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            s = self.screen(colours)
            if predicate(s):
                return s
            time.sleep(0.01)
        return None

    def kill(self):
        self.run(["kill-server"])


def base_env(config):
    return {"TERM": "tmux-direct", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "ALSA_CONFIG_PATH": asound,
            "XDG_CONFIG_HOME": config, "XDG_RUNTIME_DIR": config, "HOME": config, "NO_COLOR": ""}


def musit_session(files, look, device=("--device", "benchpaced")):
    config = tempfile.mkdtemp()
    os.makedirs(f"{config}/musit")
    with open(f"{config}/musit/config.json", "w") as f:
        f.write('{"look": %s}' % look)
    cmd = " ".join([musit, "--offline"] + list(device) + files)
    return Tmux(f"env TERM=tmux-direct {cmd}", base_env(config)), config


def writes(pid):
    """Write calls of the main (UI) thread: one per frame drawn."""
    try:
        for line in open(f"/proc/{pid}/task/{pid}/io"):
            if line.startswith("syscw:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


FRAMES = {}


def measure(pid, seconds=WINDOW):
    """ms of CPU per second of the whole process. Clock ticks are 10 ms, too coarse for a few
    ms a second, so threads' schedstat nanoseconds are summed where the kernel keeps them:
    the growth of threads alive at both ends, plus all of threads born in the window (a
    thread that ends inside it loses its last slice)."""
    c0, n0, t0, w0 = cpu_seconds(pid), thread_ns(pid), time.monotonic(), writes(pid)
    time.sleep(seconds)
    c1, n1, elapsed, w1 = cpu_seconds(pid), thread_ns(pid), time.monotonic() - t0, writes(pid)
    if w0 is not None and w1 is not None:
        FRAMES[pid] = (w1 - w0) / elapsed
    if n0 is not None and n1 is not None:
        ns = sum(v - n0.get(t, 0) for t, v in n1.items())
        return ns / 1e9 / elapsed * 1000
    return (c1 - c0) / elapsed * 1000


def musit_cpu(track, look, pause=False, device=("--device", "benchpaced")):
    t, config = musit_session([track], look, device)
    try:
        pid = t.program("musit-tui")
        if not t.wait(lambda s: "▶ playing" in s):
            raise RuntimeError("musit did not play: " + t.screen())
        time.sleep(3)
        if pause:
            t.send("Space")
            t.wait(lambda s: "⏸ paused" in s)
            time.sleep(1)
        cpu = measure(pid)
        frame_rates.append(FRAMES.get(pid))
        return cpu
    finally:
        t.kill()
        shutil.rmtree(config, ignore_errors=True)


frame_rates = []


def cmus_cpu(track):
    config = tempfile.mkdtemp()
    os.makedirs(f"{config}/cmus")
    with open(f"{config}/cmus/rc", "w") as f:
        f.write("set output_plugin=alsa\nset dsp.alsa.device=benchpaced\n")
    env = base_env(config)
    t = Tmux("cmus", env)
    try:
        pid = t.program("cmus")
        # Without D-Bus cmus stops at an MPRIS notice: answer it.
        t.wait(lambda s: "Press <enter>" in s, timeout=5)
        t.send("Enter")
        time.sleep(0.5)
        subprocess.run(["cmus-remote", "-f", track], env={**os.environ, **env}, check=True)
        t.wait(lambda s: "00:01" in s or "0:01" in s)
        time.sleep(3)
        return measure(pid)
    finally:
        t.kill()
        shutil.rmtree(config, ignore_errors=True)


def screenless_cpu(args):
    """A player with no screen, from 3 s after its start."""
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, env={**os.environ, "ALSA_CONFIG_PATH": asound})
    try:
        time.sleep(3)
        return measure(p.pid)
    finally:
        p.kill()
        p.wait()


def mpg123_cpu(track):
    return screenless_cpu(["mpg123", "-q", "-o", "alsa", "-a", "benchpaced", track])


def headless_cpu(track, device):
    """The engine alone: no screen at all."""
    return screenless_cpu([musit, "--headless", "--offline"] + list(device) + [track])


FLOOR = os.path.join(tempfile.gettempdir(), f"musit-frame-floor-{os.getpid()}")


def floor_cpu():
    """bench/frame_floor.c in tmux: 30 frames a second of about 210 bytes, nothing else."""
    config = tempfile.mkdtemp()
    t = Tmux(FLOOR, base_env(config))
    try:
        pid = t.program(os.path.basename(FLOOR))
        time.sleep(2)
        return measure(pid)
    finally:
        t.kill()
        shutil.rmtree(config, ignore_errors=True)


def cover_latency(first, second):
    """Milliseconds from the first screen with the second track's title to the first with its cover."""
    t, config = musit_session([first, second], '{"theme": "album", "cover": true}')
    try:
        s = t.wait(lambda s: "Cover Bench" in s, timeout=20)
        if s is None:
            return None
        t0 = time.monotonic()
        drawn = t.wait(lambda s: "▀" in s, timeout=5)
        return (time.monotonic() - t0) * 1000 if drawn else None
    finally:
        t.kill()
        shutil.rmtree(config, ignore_errors=True)


def streamed_cover_latencies(musit, first, covered, rounds=5):
    """Milliseconds from Now Playing showing a streamed song (its time line, "/ 3:00") to its
    cover on screen: a backend on loopback, the cover fetched from its cover endpoint. Each
    round is a new player, so nothing is cached."""
    import json
    sys.path.insert(0, here)
    from serverutil import call, start_server
    work = tempfile.mkdtemp(prefix="musit-look-bench-")
    server, port = start_server(musit)
    base = f"http://127.0.0.1:{port}"
    try:
        token = call(port, "POST", "/api/v1/auth/register", {"username": "ana", "password": "correct horse"})["accessToken"]
        for path in (first, covered):
            with open(path, "rb") as f:
                call(port, "POST", "/api/v1/songs", token=token, data=f.read(), content_type="audio/mpeg")
        out = []
        for _ in range(rounds):
            home = tempfile.mkdtemp(dir=work)
            os.makedirs(f"{home}/musit")
            tokens = call(port, "POST", "/api/v1/auth/login", {"username": "ana", "password": "correct horse"})
            with open(f"{home}/musit/session.json", "w") as f:
                json.dump({"server": base, "user": tokens["user"], "accessToken": tokens["accessToken"],
                           "refreshToken": tokens["refreshToken"], "expiresAt": time.time() + 800, "cursor": 0}, f)
            os.chmod(f"{home}/musit/session.json", 0o600)
            with open(f"{home}/musit/config.json", "w") as f:
                f.write('{"look": {"theme": "album", "cover": true}}')
            t = Tmux(f"env TERM=tmux-direct {musit} --device benchpaced --server {base}", base_env(home))
            try:
                # The first song listed is cued at start: when it is the one without a
                # cover, the other is played next. Either way the covered song has just
                # become the current one, its cover not yet fetched.
                cued = t.wait(lambda s: "/ 0:02" in s or "/ 3:00" in s, timeout=20)
                if cued is None:
                    continue
                t0 = time.monotonic()
                if "/ 3:00" not in cued:
                    t.send("j", "Enter")
                    if t.wait(lambda s: "/ 3:00" in s, timeout=10) is None:
                        continue
                    t0 = time.monotonic()
                if t.wait(lambda s: "▀" in s, timeout=10) is not None:
                    out.append((time.monotonic() - t0) * 1000)
            finally:
                t.kill()
        return out
    finally:
        server.kill()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)


if os.environ.get("LOOK_ONLY") == "streamed":
    lat = streamed_cover_latencies(musit, f"{out}/look_first.mp3", f"{out}/look180.mp3")
    print(lat)
    sys.exit(0)

subprocess.run(["gcc", "-O2", "-o", FLOOR, os.path.join(here, "frame_floor.c")], check=True)
track = f"{out}/look180.mp3"
on = '{"theme": "album", "cover": true, "visualizer": true}'
cover = '{"theme": "album", "cover": true, "visualizer": false}'
off = '{"theme": "classic", "cover": false, "visualizer": false}'
print(f"\n== the whole player's CPU in real time (tmux 120x40, 24-bit colour, {WINDOW:.0f} s windows, median of 3)")
rows = []
for label, fn in [("musit-tui, everything on (cover, album colours, motion, visualizer)", lambda: musit_cpu(track, on)),
                  ("musit-tui, cover and album colours, no visualizer", lambda: musit_cpu(track, cover)),
                  ("musit-tui, everything off (classic theme, no cover)", lambda: musit_cpu(track, off)),
                  ("musit-tui, paused (idle screen)", lambda: musit_cpu(track, on, pause=True)),
                  # A sound card tells the player how much it still holds, so the visualizer
                  # follows the sound at 30 frames a second; the paced pipe tells nothing and
                  # the bars move when it takes audio. The player's own pacing on a null
                  # device tells its delay as a card does. The engine then sleeps on a timer
                  # of its own, whose wakes it pays for (on the pipe pv's timer wakes it).
                  ("musit-tui, everything on, device telling its delay (null, --pace)",
                   lambda: musit_cpu(track, on, device=("--device", "benchnull", "--pace"))),
                  ("musit-tui --headless (engine alone), null, --pace",
                   lambda: headless_cpu(track, ("--device", "benchnull", "--pace"))),
                  ("C floor: 30 frames/s of ~210 bytes to tmux, nothing else (frame_floor.c)", floor_cpu),
                  ("cmus 2.10 in tmux", lambda: cmus_cpu(track)),
                  ("mpg123 CLI (no screen)", lambda: mpg123_cpu(track))]:
    frame_rates.clear()
    figures = [fn() for _ in range(3)]
    rows.append((label, statistics.median(figures)))
    rates = [r for r in frame_rates if r is not None]
    drawn = f"   frames drawn {statistics.median(rates):5.1f}/s" if rates else ""
    print(f"  {label:<72} {statistics.median(figures):6.2f} ms CPU / s   (runs: {', '.join(f'{x:.2f}' for x in figures)}){drawn}")
cmus = dict(rows)["cmus 2.10 in tmux"]
print(f"  ratio everything on / cmus: {rows[0][1] / cmus:.2f}x   (target <= 1)")
print(f"  ratio everything off / cmus: {rows[2][1] / cmus:.2f}x")
print(f"  ratio everything on, device telling its delay / cmus: {rows[4][1] / cmus:.2f}x")
# What 30 frames a second cannot cost less than here: the same engine alone, plus a program
# that only sleeps, wakes and writes frames of the same size to the same terminal.
floor = rows[5][1] + rows[6][1]
os.unlink(FLOOR)
print(f"  floor at 30 frames/s (engine alone + C frame floor): {floor:.2f} ms CPU / s;"
      f" everything on at 30 frames/s / floor: {rows[4][1] / floor:.2f}x; floor / cmus: {floor / cmus:.2f}x")

print("\n== track change to cover drawn (local file, embedded 600x600 JPEG, median of 5)")
lat = [x for x in (cover_latency(f"{out}/look_first.mp3", track) for _ in range(5)) if x is not None]
if lat:
    print(f"  {statistics.median(lat):.0f} ms  (min {min(lat):.0f}, max {max(lat):.0f}; tmux polled every ~10 ms)")
else:
    print("  no cover seen")

print("\n== track change to cover drawn (streamed song, cover from the backend on loopback, median of 5)")
lat = streamed_cover_latencies(musit, f"{out}/look_first.mp3", track)
if lat:
    print(f"  {statistics.median(lat):.0f} ms  (min {min(lat):.0f}, max {max(lat):.0f}; tmux polled every ~10 ms)")
else:
    print("  no cover seen")
