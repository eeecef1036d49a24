"""True durations through the real binary: a song's duration from the server (upload
answer and HLS playlist) and from the headless player equals the samples the reference
decoder (the mpg123 command, gapless) plays, for files whose libmpg123 estimate was
wrong; files with no playable audio are refused by both, with the same reason; a file cut
short is refused by the server and played as far as it goes by the player, as mpg123
plays it, with one warning."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import BIN, Client, ROOT, Server, check, finish, register  # noqa: E402

AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))
ASOUNDRC = os.path.join(ROOT, "bench", "asoundrc")


def reference(path):
    """Seconds the mpg123 command plays (gapless), and its rate."""
    info = subprocess.run(["mpg123", "-t", path], capture_output=True, text=True).stderr
    rate = int(re.search(r"MPEG \S+ L I+ \S+ (\d+) ", info).group(1))
    raw = subprocess.run(["mpg123", "-q", "--stereo", "-s", path], capture_output=True).stdout
    return len(raw) / 4 / rate, rate


def headless(path):
    env = dict(os.environ, ALSA_CONFIG_PATH=ASOUNDRC, HOME=os.environ.get("TMPDIR", "/tmp"))
    p = subprocess.run([BIN, "--headless", "--offline", "--device", "benchnull", path], capture_output=True, text=True,
                       env=env, timeout=120)
    return p.returncode, p.stdout, p.stderr


def main():
    server = Server().start()
    try:
        token = register(server.port, "durations")
        c = Client(server.port, token)
        files = ["durations/big_cover.mp3", "durations/two_hours_32k.mp3", "durations/no_info_tag.mp3",
                 "durations/lame_vbr.mp3", "durations/ffmpeg.mp3", "durations/mpeg2_mono.mp3", "sine440.mp3"]
        for name in files:
            path = os.path.join(AUDIO, name)
            truth, rate = reference(path)
            with open(path, "rb") as f:
                s, song = c.request("POST", "/api/v1/songs", f.read(), {"Content-Type": "audio/mpeg"})
            if s != 201:
                check(False, "%s uploads (%d %s)" % (name, s, song))
                continue
            _, urls = c.request("GET", "/api/v1/songs/%d/stream" % song["id"])
            _, playlist = Client(server.port).request("GET", urls["hls"], raw=True)
            extinf = sum(float(x) for x in re.findall(rb"#EXTINF:([0-9.]+),", playlist))
            code, out, _ = headless(path)
            shown = re.search(r"\(((?:\d+:)?\d+:\d\d)\)", out)
            shown_s = -1
            if shown:
                shown_s = 0
                for part in shown.group(1).split(":"):
                    shown_s = shown_s * 60 + int(part)
            check(abs(song["duration"] - truth) < 0.5 / rate and abs(extinf - truth) < 0.001 * len(re.findall(rb"#EXTINF", playlist))
                  and shown_s == int(truth) and code == 0,
                  "%s: server %.5f s, HLS %.5f s, player %d s; mpg123 plays %.5f s" % (name, song["duration"], extinf, shown_s, truth))
        path = os.path.join(AUDIO, "truncated.mp3")
        with open(path, "rb") as f:
            s, body = c.request("POST", "/api/v1/songs", f.read(), {"Content-Type": "audio/mpeg"})
        detail = (body or {}).get("detail", "")
        code, out, err = headless(path)
        truth, _ = reference(path)
        shown = re.search(r"\((\d+):(\d\d)\)", out)
        warnings = [l for l in err.splitlines() if "truncated MP3" in l]
        check(s == 422 and "truncated MP3" in detail, "truncated.mp3: the server refuses it (%d %r)" % (s, detail))
        check(code == 0 and shown and int(shown.group(1)) * 60 + int(shown.group(2)) == int(truth) and len(warnings) == 1
              and "playing what is there" in warnings[0],
              "and the player plays its %.2f s as mpg123 does, exit %d, warned once: %r" % (truth, code, warnings))
        for name, reason in [("no_samples.mp3", "no audio to play"),
                             ("tag_only.mp3", "holds an ID3 tag but no audio frames"), ("random.mp3", "no MPEG audio frames")]:
            path = os.path.join(AUDIO, name)
            with open(path, "rb") as f:
                s, body = c.request("POST", "/api/v1/songs", f.read(), {"Content-Type": "audio/mpeg"})
            code, out, err = headless(path)
            detail = (body or {}).get("detail", "")
            check(s == 422 and reason in detail and code != 0 and reason in err,
                  "%s is refused by both: server %d %r, player exit %d %r" % (name, s, detail, code, err.strip()[-90:]))
    finally:
        server.stop()
    finish("durations")


if __name__ == "__main__":
    main()
