"""One upload of a 7 MB MP3 (stream to disk, SHA-256, frame walk, tags, HLS index, fsync,
commit) by curl, as audio/mpeg and as a form, timed over loopback, beside what the bytes cost elsewhere on this machine: the
mpg123 command decoding the whole file, and sha256sum reading it. With more binaries (a
baseline build; `BINARY@split`, the split deployment, where the gateway hands the file to
Library over gRPC and Library reads it again) all are timed in the same run.

usage: upload.py FILE.mp3 [LABEL=]BINARY[@split] ..."""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from serverutil import call, start_server  # noqa: E402

ROUNDS = 7


def cpu_seconds(cmd):
    start = os.times()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    end = os.times()
    return (end.children_user - start.children_user) + (end.children_system - start.children_system)


def multipart(body, boundary="musit-bench-7MfJ"):
    head = ("--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"track.mp3\"\r\n"
            "Content-Type: audio/mpeg\r\n\r\n" % boundary).encode()
    return head + body + ("\r\n--%s--\r\n" % boundary).encode(), "multipart/form-data; boundary=" + boundary


def uploads(binary, data, form=False):
    server, port = start_server(binary)
    try:
        token = call(port, "POST", "/api/v1/auth/register", {"username": "bench", "password": "correct horse"})["accessToken"]
        times = []
        for i in range(ROUNDS):
            # A different ID3v1 title each time, so no upload is a duplicate of another.
            body = data + b"TAG" + ("round %d" % i).encode().ljust(30, b"\0") + b"\0" * 95
            # curl, as users upload: it sends Expect: 100-continue for bodies over 1 MB.
            name = os.path.join(os.environ.get("TMPDIR", "/tmp"), "musit-upload-%d.mp3" % i)
            with open(name, "wb") as f:
                f.write(body)
            part = ["-F", "file=@%s;type=audio/mpeg" % name] if form else \
                ["-H", "Content-Type: audio/mpeg", "--data-binary", "@" + name]
            out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}",
                                  "-H", "Authorization: Bearer " + token] + part +
                                 ["http://127.0.0.1:%d/api/v1/songs" % port], capture_output=True, text=True).stdout.split()
            os.remove(name)
            assert out[0] == "201", out
            times.append(float(out[1]))
        return times
    finally:
        server.terminate()
        server.wait()


def main():
    path, binaries = sys.argv[1], sys.argv[2:]
    data = open(path, "rb").read()
    decode = min(cpu_seconds(["mpg123", "-q", "-t", path]) for _ in range(3))
    sha = min(cpu_seconds(["sha256sum", path]) for _ in range(3))
    print("== one upload of a %.1f MB MP3 (%d rounds; median, best)" % (len(data) / 1e6, ROUNDS))
    print("  peers on the same bytes: mpg123 decodes it all in %.3f s of CPU, sha256sum reads it in %.3f s" % (decode, sha))
    named = [b.split("=", 1) if "=" in b else [label, b] for label, b in zip(["this tree", "baseline"] + [""] * 8, binaries)]
    for label, binary in named:
        for form in (False, True):
            t = uploads(binary, data, form)
            med = statistics.median(t)
            print("  %-11s %-10s upload: median %.3f s, best %.3f s  (%.2f× mpg123's full decode; target ≤ 0.300 s)"
                  % (label, "multipart" if form else "audio/mpeg", med, min(t), med / decode))


if __name__ == "__main__":
    main()
