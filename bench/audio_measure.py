"""Measures musit-tui --headless beside mpg123 on the same files and ALSA devices."""
import os, statistics, subprocess, sys, tempfile, time

musit, out = sys.argv[1], sys.argv[2]
env = dict(os.environ)


def duration(path):
    """Seconds of audio, as musit-tui reads them from the file's Info tag."""
    r = subprocess.run([musit, "--headless", "--device", "benchnull", path], capture_output=True, text=True, env=env)
    clock = r.stdout.split("(")[-1].split(")")[0]
    minutes, secs = clock.split(":")
    return int(minutes) * 60 + int(secs)


def timed(cmd):
    """CPU seconds (user+sys, to the microsecond: /usr/bin/time's 10 ms steps were 5% of a run)
    and peak RSS (kB) of cmd, from its rusage."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    if status != 0:
        raise SystemExit(f"{cmd[0]} failed ({status})")
    return ru.ru_utime + ru.ru_stime, ru.ru_maxrss


players = {
    "musit-tui": lambda dev, f: [musit, "--headless", "--device", dev, f],
    "mpg123": lambda dev, f: ["mpg123", "-q", "-o", "alsa", "-a", dev, f],
}
# Builds of other revisions, beside this one in the same rounds: MUSIT_BASELINE_BINS="name=path,…".
for entry in filter(None, os.environ.get("MUSIT_BASELINE_BINS", "").split(",")):
    name, path = entry.split("=", 1)
    players[name] = lambda dev, f, path=path: [path, "--headless", "--device", dev, f]

track = f"{out}/track180.mp3"
seconds = duration(track)
rounds = 7
print(f"\n== CPU per audio second, unpaced null device, {seconds:.0f} s 320 kbps MP3 (median of {rounds}, players in turn)")
runs = {name: [] for name in players}
for _ in range(rounds):
    for name, cmd in players.items():
        runs[name].append(timed(cmd("benchnull", track))[0])
cpu = {name: statistics.median(r) * 1000 / seconds for name, r in runs.items()}
for name in players:
    print(f"  {name:10s} {cpu[name]:6.3f} ms CPU / audio s   /mpg123 {cpu[name] / cpu['mpg123']:.3f}x")
print(f"  ratio musit/mpg123: {cpu['musit-tui'] / cpu['mpg123']:.3f}x  (target <= 1.0x)")

print("\n== peak RSS")
for label, f in [("3 MB", f"{out}/track3mb.mp3"), ("100 MB", f"{out}/track100mb.mp3")]:
    size = os.path.getsize(f) / 1e6
    row = []
    for name, cmd in players.items():
        _, rss = timed(cmd("benchnull", f))
        row.append(f"{name} {rss / 1024:.1f} MB")
    print(f"  {label:6s} file ({size:.1f} MB): " + ", ".join(row))
print("  (cmus 2.10 measured on this machine kind: 12.4 MB; shared/BENCH.md)")


def first_frame(cmd_for_fifo, runs=7):
    """Milliseconds from spawning the player to the first PCM bytes read from a FIFO device file.
    The FIFO is held open read-write so a player that opens the device twice never blocks."""
    import select
    times = []
    for _ in range(runs):
        d = tempfile.mkdtemp()
        fifo = f"{d}/pcm"
        os.mkfifo(fifo)
        fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        t0 = time.monotonic()
        p = subprocess.Popen(cmd_for_fifo(f"benchfile:FILE={fifo}"), env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        first = None
        while True:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if ready:
                try:
                    data = os.read(fd, 1 << 16)
                except BlockingIOError:
                    data = b""
                if data and first is None:
                    first = (time.monotonic() - t0) * 1000
            elif p.poll() is not None:
                break
        os.close(fd)
        os.unlink(fifo)
        os.rmdir(d)
        if first is not None:
            times.append(first)
    return statistics.median(times) if times else float("nan")


print("\n== start to first PCM at the device (ALSA file device on a FIFO, median of 7)")
for name, cmd in players.items():
    ms = first_frame(lambda dev: cmd(dev, track))
    print(f"  {name:10s} {ms:6.1f} ms  (target < 50 ms)")


def codec_files():
    """The 180 s track as FLAC, Ogg Vorbis (q6) and Opus (160 kb/s), made once from its decode."""
    wav = f"{out}/track180.wav"
    made = {"flac": f"{out}/track180.flac", "vorbis": f"{out}/track180.ogg", "opus": f"{out}/track180.opus"}
    if all(os.path.exists(p) for p in made.values()):
        return made
    subprocess.run(["mpg123", "-q", "-w", wav, track], check=True)
    quiet = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", wav]
    subprocess.run(["flac", "-s", "-f", "-o", made["flac"], wav], check=True)
    subprocess.run(quiet + ["-c:a", "libvorbis", "-q:a", "6", made["vorbis"]], check=True)
    subprocess.run(quiet + ["-c:a", "libopus", "-b:a", "160k", made["opus"]], check=True)
    os.unlink(wav)
    return made


# Each format beside its reference decoder writing raw PCM to stdout, which is /dev/null (no
# device, so the peers do less than the player does: the ratio bounds Musit's cost from
# above). Never `-o /dev/null`: flac gives its output the input file's mode, and /dev/null
# would lose its write permission for everyone else.
peers = {
    "flac": lambda f: ["flac", "-d", "-s", "-c", "--force-raw-format", "--endian=little", "--sign=signed", f],
    "vorbis": lambda f: ["oggdec", "-Q", "-R", "-o", "-", f],
    "opus": lambda f: ["opusdec", "--quiet", "--no-dither", "--rate", "48000", f, "-"],
}
import shutil
if all(shutil.which(tool) for tool in ("flac", "oggdec", "opusdec")):
    files = codec_files()
    print(f"\n== decode CPU per audio second, other formats (180 s, median of {rounds}, in turn)")
    for kind, f in files.items():
        mine, theirs = [], []
        for _ in range(rounds):
            mine.append(timed([musit, "--headless", "--device", "benchnull", f])[0])
            theirs.append(timed(peers[kind](f))[0])
        m, t = statistics.median(mine) * 1000 / seconds, statistics.median(theirs) * 1000 / seconds
        _, rss = timed([musit, "--headless", "--device", "benchnull", f])
        print(f"  {kind:7s} musit-tui {m:6.3f} ms   {peers[kind](f)[0]:8s} {t:6.3f} ms   ratio {m / t:.3f}x"
              f"   (target <= 1.0x)   peak RSS {rss / 1024:.1f} MB")
else:
    print("\n(flac, oggdec or opusdec missing: the other formats are not measured)")
