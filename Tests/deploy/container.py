"""The image as a user runs it (podman, offline): a container started with no arguments runs
all-in-one as a non-root user, answers /healthz and its own health check, registers a user,
takes an upload and streams it back byte for byte, and stops within 10 s of SIGTERM, both
under --init and as PID 1 itself."""
import http.client
import json
import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import check, finish, free_port  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))
IMAGE = os.environ.get("MUSIT_IMAGE", "localhost/musit:dev")
os.environ.setdefault("CONTAINERS_CONF", os.path.join(ROOT, "deploy", "containers.conf"))


def podman(*args, check_rc=True):
    r = subprocess.run(["podman", *args], capture_output=True, text=True)
    if check_rc and r.returncode != 0:
        raise RuntimeError("podman %s: %s" % (" ".join(args), r.stderr.strip()))
    return r


def request(port, method, path, body=None, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, data


def start(init):
    name = "musit-check-" + uuid.uuid4().hex[:8]
    port = free_port()
    args = ["run", "-d", "--name", name, "--network", "slirp4netns:port_handler=slirp4netns",
            "-p", "127.0.0.1:%d:8080" % port, "-e", "MUSIT_BCRYPT_COST=4"]
    if init:
        args.append("--init")
    podman(*args, IMAGE)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if request(port, "GET", "/healthz")[0] == 200:
                return name, port
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("no /healthz from the container; its log:\n" + podman("logs", name, check_rc=False).stderr)


def stop_seconds(name):
    t0 = time.time()
    podman("kill", "--signal", "TERM", name)
    code = podman("wait", name).stdout.strip()
    return time.time() - t0, code


names = []
try:
    name, port = start(init=True)
    names.append(name)
    uid = podman("exec", name, "id", "-u").stdout.strip()
    check(uid == "10001", "runs as the musit user, not root (uid %s)" % uid)
    probe = podman("exec", name, "/usr/local/bin/musit-tui", "--probe", "http://127.0.0.1:8080/healthz", check_rc=False)
    check(probe.returncode == 0, "its health check command passes")
    hc = podman("image", "inspect", IMAGE, "--format", "{{json .Config.Healthcheck}}", check_rc=False).stdout
    check("--probe" in hc, "the image declares it as its HEALTHCHECK")
    s, body = request(port, "POST", "/api/v1/auth/register", json.dumps({"username": "ann", "password": "correct horse"}),
                      {"Content-Type": "application/json"})
    check(s == 201, "registers a user (%s)" % s)
    token = json.loads(body)["accessToken"]
    with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
        audio = f.read()
    s, body = request(port, "POST", "/api/v1/songs", audio, {"Content-Type": "audio/mpeg", "Authorization": "Bearer " + token})
    check(s == 201, "takes an upload (%s)" % s)
    song = json.loads(body)["id"]
    s, back = request(port, "GET", "/api/v1/songs/%d/audio" % song, headers={"Authorization": "Bearer " + token})
    check(s == 200 and back == audio, "streams it back byte for byte (%s, %d bytes)" % (s, len(back)))
    s, part = request(port, "GET", "/api/v1/songs/%d/audio" % song,
                      headers={"Authorization": "Bearer " + token, "Range": "bytes=1000-1999"})
    check(s == 206 and part == audio[1000:2000], "and by Range (%s)" % s)
    data = podman("exec", name, "sh", "-c", "ls /data /media && stat -c %a /data", check_rc=False).stdout
    check("musit.sqlite" in data and data.strip().endswith("700"), "its data in /data (0700), its songs in /media")
    took, code = stop_seconds(name)
    check(took < 10 and code == "0", "SIGTERM under --init: exit %s in %.2f s" % (code, took))

    name, port = start(init=False)
    names.append(name)
    took, code = stop_seconds(name)
    check(took < 10 and code == "0", "SIGTERM to the server as PID 1: exit %s in %.2f s" % (code, took))
finally:
    for n in names:
        podman("rm", "-f", "-v", n, check_rc=False)   # with its anonymous /data and /media volumes
finish("container")
