"""The kitty graphics protocol: musit-tui in a pseudo-terminal that asks for it (look.kitty)
places the real cover over blank cells of Now Playing instead of drawing half blocks, and
on a track change removes it and places the next one; with NO_COLOR nothing is placed.

usage: kitty.py MUSIT_BINARY TEST_AUDIO_DIR"""
import base64, fcntl, os, pty, re, select, struct, sys, tempfile, termios, time

binary, audio = sys.argv[1], sys.argv[2]
failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def run(files, seconds, extra_env=None):
    """Everything the player wrote to a 100x30 terminal in `seconds`."""
    config = tempfile.mkdtemp()
    os.makedirs(f"{config}/musit")
    with open(f"{config}/musit/config.json", "w") as f:
        f.write('{"look": {"kitty": true}}')
    asound = f"{config}/asoundrc"
    with open(asound, "w") as f:
        f.write("pcm.testnull { type null }\n")
    pid, fd = pty.fork()
    if pid == 0:
        env = {"PATH": "/usr/bin:/bin", "TERM": "xterm-256color", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
               "ALSA_CONFIG_PATH": asound, "XDG_CONFIG_HOME": config, "XDG_DATA_HOME": config, "HOME": config}
        env.update(extra_env or {})
        os.execve(binary, [binary, "--offline", "--device", "testnull", "--pace"] + [f"{audio}/{f}" for f in files], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    os.kill(pid, 28)  # SIGWINCH: the size set after fork
    seen = b""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                seen += os.read(fd, 1 << 16)
            except OSError:
                break
    os.kill(pid, 15)
    try:
        while select.select([fd], [], [], 0.5)[0]:
            seen += os.read(fd, 1 << 16)
    except OSError:
        pass
    os.waitpid(pid, 0)
    os.close(fd)
    return seen


def images(out):
    """Each transmitted picture: (keys, pixels, row, column) with the cursor move before it;
    and the ids deleted, in order of appearance."""
    events = []
    for m in re.finditer(rb"\x1b7\x1b\[(\d+);(\d+)H((?:\x1b_G[^;]*;[A-Za-z0-9+/=]*\x1b\\)+)\x1b8|\x1b_Ga=d,d=I,i=(\d+),q=2\x1b\\", out):
        if m.group(4):
            events.append(("delete", int(m.group(4))))
            continue
        chunks = re.findall(rb"\x1b_G([^;]*);([A-Za-z0-9+/=]*)\x1b\\", m.group(3))
        keys = dict(kv.split(b"=") for kv in chunks[0][0].split(b","))
        data = base64.b64decode(b"".join(c[1] for c in chunks))
        events.append(("place", {k.decode(): v.decode() for k, v in keys.items()}, data, int(m.group(1)), int(m.group(2))))
    return events


def pixel(keys, data, x, y):
    i = (y * int(keys["s"]) + x) * 3
    return tuple(data[i:i + 3])


# One cover of four quadrants.
out = run(["covers/quadrants.mp3"], 4)
placed = [e for e in images(out) if e[0] == "place"]
check(len(placed) >= 1, f"the cover was placed ({len(placed)} placements)")
if placed:
    _, keys, data, row, col = placed[0]
    w, h = int(keys["s"]), int(keys["v"])
    check(keys["a"] == "T" and keys["f"] == "24" and keys["C"] == "1", f"transmit and show raw RGB, cursor kept: {keys}")
    check(len(data) == w * h * 3 and (w, h) == (64, 64), f"{w}x{h} pixels, {len(data)} bytes")
    want = [(230, 40, 40), (40, 200, 60), (40, 80, 230), (240, 220, 40)]
    got = [pixel(keys, data, 0, 0), pixel(keys, data, w - 1, 0), pixel(keys, data, 0, h - 1), pixel(keys, data, w - 1, h - 1)]
    check(got == want, f"the quadrants in place: {got}")
    check(int(keys["c"]) == 2 * int(keys["r"]) and int(keys["r"]) >= 3, f"a square box of cells: {keys['c']}x{keys['r']}")
    check(2 <= row <= 8 and 2 <= col <= 10, f"at the top left of Now Playing: row {row}, column {col}")
check("▀".encode() not in out, "no half blocks drawn under the picture")
check(b"Cover quadrants" in out, "the title is drawn beside it")

# A track change: the first picture removed, the second placed.
out = run(["covers/fade_a.mp3", "covers/fade_b.mp3"], 6)
events = images(out)
places = [e for e in events if e[0] == "place"]
check(len(places) >= 2, f"two covers placed ({len(places)})")
if len(places) >= 2:
    first, second = places[0], places[-1]
    check(pixel(first[1], first[2], 0, 0) == (255, 0, 0), f"the first is red: {pixel(first[1], first[2], 0, 0)}")
    check(pixel(second[1], second[2], 0, 0) == (20, 60, 255), f"the next is blue: {pixel(second[1], second[2], 0, 0)}")
    first_id = int(first[1]["i"])
    deleted = [e[1] for e in events if e[0] == "delete"]
    check(first_id in deleted, f"picture {first_id} removed before the next (removed: {deleted})")
    if first_id in deleted:
        check(events.index(("delete", first_id)) < events.index(second), "removed before the next was placed")

# NO_COLOR: no pictures at all.
out = run(["covers/quadrants.mp3"], 3, {"NO_COLOR": "1"})
check(b"\x1b_G" not in out and b"Cover quadrants" in out, "NO_COLOR: the title, no picture")

print("kitty: all passed" if not failures else f"kitty: {len(failures)} failed")
sys.exit(1 if failures else 0)
