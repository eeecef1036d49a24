"""Start to first frame: milliseconds from spawning musit-tui in a 120x40 pseudo-terminal
until the first full screen (the Queue pane's title) has been written to it."""
import fcntl, os, pty, select, statistics, struct, sys, tempfile, termios, time

binary, demo = sys.argv[1], sys.argv[2]
asound = os.path.join(os.path.dirname(os.path.abspath(__file__)), "asoundrc")


def once():
    pid, fd = pty.fork()
    if pid == 0:
        os.environ.update({"TERM": "xterm-256color", "LANG": "C.UTF-8", "ALSA_CONFIG_PATH": asound,
                           "XDG_CONFIG_HOME": tempfile.mkdtemp()})
        os.execv(binary, [binary, "--device", "benchnull", "--pace", demo])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    t0 = time.monotonic()
    seen = b""
    first = None
    while first is None and time.monotonic() - t0 < 5:
        r, _, _ = select.select([fd], [], [], 0.5)
        if r:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
            if b"Queue" in seen and b"Chat" in seen:
                first = (time.monotonic() - t0) * 1000
    os.kill(pid, 15)
    os.waitpid(pid, 0)
    os.close(fd)
    return first


# The pty size is set right after fork, so the first frame may be for the default size;
# either way it is the first complete screen.
times = [t for t in (once() for _ in range(9)) if t is not None]
print(f"\n== start to first frame (release binary, pty 120x40, median of {len(times)})")
print(f"  {statistics.median(times):.1f} ms  (min {min(times):.1f}, max {max(times):.1f}; target < 100 ms)")
