"""Opening a folder of tagged files in the real TUI (tmux): milliseconds from spawning
`musit-tui --offline FOLDER` to the first screen with a row of the queue, and to the last
row showing its title from the tags (after G), with no tag cache (cold) and with the cache
the first run left (warm); and the player's peak RSS, for 1,000 and 10,000 files (the
infinite scroll holds a few pages, so memory should not grow with the folder).

usage: folder.py MUSIT_BIN WORKDIR"""
import os, shutil, statistics, subprocess, sys, tempfile, time

binary, work = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
asound = os.path.join(here, "asoundrc")
root = os.path.join(here, "..")
audio = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(root, ".build", "test-audio"))


def make_folder(count):
    """COUNT copies of a 1 s MP3 in 100 album folders, each with its own ID3v2 tags (mutagen)."""
    folder = os.path.join(work, f"folder{count}")
    stamp = os.path.join(folder, ".done")
    if os.path.exists(stamp):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    script = r"""
import os, shutil, sys
from mutagen.id3 import ID3, TIT2, TPE1, TALB, TRCK
src, folder, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(count):
    d = os.path.join(folder, "album %02d" % (i % 100))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "file %05d.mp3" % i)
    shutil.copyfile(src, p)
    t = ID3()
    t.add(TIT2(encoding=3, text="Title %05d" % i))
    t.add(TPE1(encoding=3, text="Artist %d" % (i % 37)))
    t.add(TALB(encoding=3, text="Album %02d" % (i % 100)))
    t.add(TRCK(encoding=3, text=str(i // 100 + 1)))
    t.save(p)
"""
    subprocess.run(["/usr/bin/python3", "-c", script, os.path.join(audio, "tag_v1.mp3"), folder, str(count)], check=True)
    open(stamp, "w").close()
    return folder


def screen(name):
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout


def wait(name, predicate, t0, timeout=120):
    while time.monotonic() - t0 < timeout:
        s = screen(name)
        if predicate(s):
            return (time.monotonic() - t0) * 1000
        time.sleep(0.005)
    return None


def run(folder, count, cache):
    name = f"musit-folder-{os.getpid()}"
    env = dict(os.environ, TERM="xterm-256color", LANG="C.UTF-8", ALSA_CONFIG_PATH=asound,
               XDG_CONFIG_HOME=tempfile.mkdtemp(), XDG_CACHE_HOME=cache)
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    t0 = time.monotonic()
    subprocess.run(["tmux", "new-session", "-d", "-s", name, "-x", "120", "-y", "40",
                    f"{binary} --offline --no-mpris --device benchnull {folder}"], env=env, check=True)
    first = wait(name, lambda s: "┌ Queue" in s and ("file 00000" in s or "Title 00000" in s), t0)
    subprocess.run(["tmux", "send-keys", "-t", name, "Space"])  # pause: only the listing works
    subprocess.run(["tmux", "send-keys", "-t", name, "G"])
    last = "Title %05d" % (count - 1)
    tags = wait(name, lambda s: last in s and "scanning" not in s, t0)
    # The cache is written after the last tags are shown: let it land before the next run.
    cache_file = os.path.join(cache, "musit", "tags.json")
    while not os.path.exists(cache_file) and time.monotonic() - t0 < 30:
        time.sleep(0.01)
    pid = subprocess.run(["tmux", "list-panes", "-t", name, "-F", "#{pane_pid}"], capture_output=True, text=True).stdout.strip()
    hwm = None
    try:
        with open(f"/proc/{pid}/status") as f:
            hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024
    except (OSError, StopIteration, ValueError):
        pass
    subprocess.run(["tmux", "kill-session", "-t", name], capture_output=True)
    return first, tags, hwm


print("\n== a folder of tagged MP3s in the TUI (tmux 120x40, release binary; files in the page cache)")
print(f"  {'files':>6}  {'cache':>5}  {'first screen':>12}  {'all tags (last row titled)':>26}  {'peak RSS':>8}")
for count in (1000, 10000):
    folder = make_folder(count)
    rounds = int(os.environ.get("FOLDER_ROUNDS", "3"))
    cold, warm = [], []
    for _ in range(rounds):
        cache = tempfile.mkdtemp()
        cold.append(run(folder, count, cache))
        warm.append(run(folder, count, cache))
        shutil.rmtree(cache, ignore_errors=True)
    for label, results in (("cold", cold), ("warm", warm)):
        ok = [r for r in results if r[0] is not None and r[1] is not None]
        if not ok:
            print(f"  {count:>6}  {label:>5}  (timed out)")
            continue
        med = lambda i: statistics.median(r[i] for r in ok)
        rss = statistics.median(r[2] for r in ok if r[2] is not None)
        print(f"  {count:>6}  {label:>5}  {med(0):>9.0f} ms  {med(1):>23.0f} ms  {rss:>5.1f} MB"
              f"   (rounds {', '.join('%.0f' % r[1] for r in ok)} ms)")
