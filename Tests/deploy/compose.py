"""The compose stack, checked with what this machine has (no registry, no Docker engine):

1. compose.yaml is valid for the compose specification's schema (check-jsonschema) and for
   docker-compose 1.29's own model (`config -q`), in both profiles.
2. The `services` profile's Musit containers (the key maker, the gateway, Accounts, Social and Stats, exactly
   as compose.yaml declares them: image, init, command, environment, volumes) run under
   podman-compose. The images that cannot be pulled here are replaced by the host's own:
   PostgreSQL (a throwaway cluster, MUSIT_TEST_POSTGRES_URL), Prometheus (Debian's, with
   deploy/prometheus's rules) and, for the OpenTelemetry Collector, a stand-in OTLP/HTTP
   receiver that decodes what it gets. The stack's network becomes the host's loopback
   (`network_mode: host`), its addresses and ports follow.
3. A smoke test through the gateway: register, befriend, a held long-poll woken by a chat
   message, upload, stream (whole and by Range), plays (gRPC to Stats), the admin
   statistics, a 404.
4. Every PromQL query of the Grafana dashboard parses and returns data from Prometheus
   scraping both containers, and names only metrics Musit exports.
5. Every log line of both containers is JSON with time, level, message and service; request
   lines carry their request id; one request's trace_id is in the gateway's lines and in
   Stats' lines, and in the OTLP traces and logs both exported.
"""
import copy
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, check, finish, free_port, register  # noqa: E402
from otlp import Collector  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))
IMAGE = os.environ.get("MUSIT_IMAGE", "localhost/musit:dev")
PG = os.environ["MUSIT_TEST_POSTGRES_URL"]
os.environ.setdefault("CONTAINERS_CONF", os.path.join(ROOT, "deploy", "containers.conf"))
COMPOSE = os.path.join(ROOT, "compose.yaml")
PROJECT = "musitcheck%d" % os.getpid()


def run(*args, env=None, check_rc=True, timeout=120):
    r = subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise RuntimeError("%s: %s%s" % (" ".join(args), r.stdout[-2000:], r.stderr[-2000:]))
    return r


# 1. Validity.
r = run("check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE, check_rc=False)
check(r.returncode == 0, "compose.yaml is valid for the compose specification's schema")
offline = dict(os.environ, DOCKER_HOST="unix:///nonexistent")
for profile in ("all-in-one", "services"):
    r = run("docker-compose", "-f", COMPOSE, "--profile", profile, "config", "-q", env=offline, check_rc=False)
    check(r.returncode == 0, "docker-compose config accepts profile %s %s" % (profile, r.stderr.strip()[-300:]))
with open(COMPOSE) as f:
    spec = yaml.safe_load(f)
with open(os.path.join(ROOT, ".env")) as f:
    dotenv = dict(l.strip().split("=", 1) for l in f if "=" in l and not l.startswith("#"))
check(dotenv.get("COMPOSE_PROFILES") == "all-in-one", "all-in-one is the default profile (.env)")
published = sorted(name for name, s in spec["services"].items() if s.get("ports"))
check(published == ["gateway", "grafana", "jaeger", "musit"],
      "nothing published but Musit's public port, Grafana and Jaeger's UI (%s)" % published)
musit_services = [n for n, s in spec["services"].items() if "services" in s.get("profiles", [])
                  and str(s.get("image", "")).startswith("${MUSIT_IMAGE")]
check(set(musit_services) == {"keys", "gateway", "accounts", "library", "social", "stats"}, "profile services runs Musit as %s" % musit_services)
shared = [n for n, s in spec["services"].items() if set(s.get("profiles", [])) == {"all-in-one", "services"}]
check({"postgres", "otel-collector", "jaeger", "loki", "prometheus", "grafana"} <= set(shared),
      "PostgreSQL and the telemetry stack belong to both profiles")
for name in ("musit", "gateway", "accounts", "library", "social", "stats"):
    s = spec["services"][name]
    check(s.get("init") is True and s.get("healthcheck") and "service_healthy" in json.dumps(s.get("depends_on")),
          "%s: init, a health check, and waits for a healthy database" % name)


# The stand-in collector: OTLP/HTTP traces and logs, decoded.
collector = Collector()
SPANS, RECORDS, lock = collector.spans, collector.records, collector.lock

# 2. The services profile's Musit containers as declared, on the host's loopback.
gw_port, grpc_port, stats_port, prom_port = free_port(), free_port(), free_port(), free_port()
social_grpc, social_port = free_port(), free_port()
accounts_grpc, accounts_port = free_port(), free_port()
library_grpc, library_port = free_port(), free_port()
work = tempfile.mkdtemp(prefix="musit-compose-")
test = {"services": {}, "volumes": {}}
for name in musit_services:
    s = copy.deepcopy(spec["services"][name])
    s["image"] = IMAGE
    s.pop("build", None)
    s.pop("ports", None)
    s.pop("restart", None)
    # Health is polled below (podman's health checks need systemd; podman-compose skips
    # service_healthy before podman 4.6); the order and the other conditions are kept.
    if not s.get("healthcheck", {}).get("disable"):
        s.pop("healthcheck", None)
    s["depends_on"] = {d: c for d, c in (s.get("depends_on") or {}).items() if d in musit_services}
    s["network_mode"] = "host"
    s.pop("profiles", None)
    env = s.setdefault("environment", {})
    if "MUSIT_DATABASE_URL" in env:
        env["MUSIT_DATABASE_URL"] = PG
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = collector.endpoint
        env["OTEL_BSP_SCHEDULE_DELAY"] = "500"
        env["OTEL_BLRP_SCHEDULE_DELAY"] = "500"
        env["MUSIT_HOST"] = "127.0.0.1"
        env["MUSIT_BCRYPT_COST"] = "4"
    if name == "gateway":
        env["MUSIT_PORT"] = str(gw_port)
        env["MUSIT_STATS_ADDR"] = "127.0.0.1:%d" % grpc_port
        env["MUSIT_SOCIAL_ADDR"] = "127.0.0.1:%d" % social_grpc
        env["MUSIT_ACCOUNTS_ADDR"] = "127.0.0.1:%d" % accounts_grpc
        env["MUSIT_LIBRARY_ADDR"] = "127.0.0.1:%d" % library_grpc
    if name == "accounts":
        env["MUSIT_GRPC_PORT"] = str(accounts_grpc)
        env["MUSIT_PORT"] = str(accounts_port)
        env["MUSIT_ADMIN"] = "admin"
    if name == "library":
        env["MUSIT_GRPC_PORT"] = str(library_grpc)
        env["MUSIT_PORT"] = str(library_port)
    if name == "stats":
        env["MUSIT_GRPC_PORT"] = str(grpc_port)
        env["MUSIT_PORT"] = str(stats_port)
    if name == "social":
        env["MUSIT_GRPC_PORT"] = str(social_grpc)
        env["MUSIT_PORT"] = str(social_port)
    for v in s.get("volumes", []):
        test["volumes"][v.split(":")[0]] = {}
    test["services"][name] = s
test_file = os.path.join(work, "compose.yaml")
with open(test_file, "w") as f:
    yaml.safe_dump(test, f)
compose = ["podman-compose", "-p", PROJECT, "-f", test_file]


def logs(service):
    r = run("podman", "logs", "%s_%s_1" % (PROJECT, service), check_rc=False)
    return r.stdout + r.stderr


def healthy(port):
    try:
        return urllib.request.urlopen("http://127.0.0.1:%d/healthz" % port, timeout=2).status == 200
    except OSError:
        return False


prometheus = None
t_up = time.time()
try:
    run(*compose, "up", "-d", timeout=180)
    deadline = time.time() + 60
    ports = (gw_port, accounts_port, library_port, stats_port, social_port)
    while time.time() < deadline and not all(healthy(p) for p in ports):
        time.sleep(0.2)
    check(all(healthy(p) for p in ports),
          "podman-compose starts the gateway, Accounts, Library, Social and Stats on PostgreSQL (%.1f s)" % (time.time() - t_up))
    key = run("podman", "run", "--rm", "-v", "%s_keys:/keys:ro" % PROJECT, "--entrypoint", "/bin/sh", IMAGE, "-c",
              "stat -c '%a %u' /keys/jwt; wc -c < /keys/jwt", check_rc=False).stdout.split()
    check(key[:2] == ["600", "10001"] and int(key[2]) >= 32,
          "the signing key made at first start: 0600, the musit user's, %s bytes" % key[2:3])

    # Prometheus on the host, scraping both, as deploy/prometheus/prometheus.yml does.
    with open(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")) as f:
        prom = yaml.safe_load(f)
    prom["global"]["scrape_interval"] = "1s"
    prom["global"]["evaluation_interval"] = "1s"
    prom["rule_files"] = [os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")]
    targets = {"gateway:8080": "127.0.0.1:%d" % gw_port, "stats:9102": "127.0.0.1:%d" % stats_port,
               "social:9104": "127.0.0.1:%d" % social_port, "accounts:9106": "127.0.0.1:%d" % accounts_port,
               "library:9108": "127.0.0.1:%d" % library_port}
    for job in prom["scrape_configs"]:
        for sc in job["static_configs"]:
            sc["targets"] = [targets[t] for t in sc["targets"] if t in targets]
    prom["scrape_configs"] = [j for j in prom["scrape_configs"] if any(sc["targets"] for sc in j["static_configs"])]
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        yaml.safe_dump(prom, f)
    prometheus = subprocess.Popen(["prometheus", "--config.file", os.path.join(work, "prometheus.yml"),
                                   "--storage.tsdb.path", os.path.join(work, "tsdb"),
                                   "--web.listen-address", "127.0.0.1:%d" % prom_port],
                                  stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "w"))

    def ready():
        try:
            return urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % prom_port, timeout=2).status == 200
        except OSError:
            return False

    deadline = time.time() + 60
    while time.time() < deadline and not ready():
        time.sleep(0.2)
    check(ready(), "Prometheus is ready")

    # 3. The smoke test, through the gateway.
    admin = register(gw_port, "admin")
    bob = register(gw_port, "bob")
    A, B = Client(gw_port, admin), Client(gw_port, bob)
    s, _ = A.request("POST", "/api/v1/friends/requests", {"username": "bob"})
    s2, _ = B.request("POST", "/api/v1/friends/requests/admin/accept")
    check((s, s2) == (201, 200), "register and befriend (%s, %s)" % (s, s2))
    _, page = B.request("GET", "/api/v1/events?cursor=0&timeout=0")
    cursor = page["cursor"]
    got = {}

    def poll():
        got["answer"] = Client(gw_port, bob).request("GET", "/api/v1/events?cursor=%d&timeout=20" % cursor)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.5)
    s, _ = A.request("POST", "/api/v1/messages", {"to": "bob", "body": "hello through the gateway", "clientId": "c1"})
    poller.join(25)
    events = (got.get("answer") or (0, {}))[1].get("events", [])
    check(s == 201 and any(e.get("message", {}).get("body") == "hello through the gateway" for e in events),
          "chat: a held long-poll is woken by the message (%s, %d events)" % (s, len(events)))
    with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
        audio = f.read()
    s, song = A.request("POST", "/api/v1/songs", audio, {"Content-Type": "audio/mpeg"})
    check(s == 201, "upload (%s)" % s)
    s, whole = B.request("GET", "/api/v1/songs/%d/audio" % song["id"], raw=True)
    s2, part = B.request("GET", "/api/v1/songs/%d/audio" % song["id"], headers={"Range": "bytes=100-1099"}, raw=True)
    check(s == 200 and whole == audio and s2 == 206 and part == audio[100:1100], "stream, whole and by Range (%s, %s)" % (s, s2))
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    s, p = B.request("POST", "/api/v1/plays", {"songId": song["id"], "event": "start", "position": 0},
                     {"traceparent": "00-%s-%s-01" % (trace_id, parent)})
    check(s == 201, "a play, recorded by Stats over gRPC (%s)" % s)
    s, st = A.request("GET", "/api/v1/admin/stats")
    check(s == 200 and st.get("plays", st.get("totalPlays", 1)) != 0, "the admin statistics through Stats (%s)" % s)
    s, _ = A.request("GET", "/api/v1/songs/999999")
    check(s == 404, "and a 404, for the error panels (%s)" % s)
    # Keep traffic going while Prometheus scrapes, so every rate has two samples to compare.
    for _ in range(8):
        B.request("GET", "/api/v1/songs/%d/audio" % song["id"], headers={"Range": "bytes=0-999"}, raw=True)
        A.request("POST", "/api/v1/messages", {"to": "bob", "body": "tick", "clientId": secrets.token_hex(8)})
        _, page = B.request("GET", "/api/v1/events?cursor=%d&timeout=0" % cursor)
        cursor = page["cursor"]
        B.request("POST", "/api/v1/plays", {"songId": song["id"], "event": "start", "position": 0})
        A.request("GET", "/api/v1/admin/stats")
        A.request("GET", "/api/v1/nothing-here")
        time.sleep(0.5)
    # A held poll woken once more, for the wake-latency histogram's rate.
    poller = threading.Thread(target=poll)
    cursor_before = cursor
    poller.start()
    time.sleep(0.5)
    A.request("POST", "/api/v1/messages", {"to": "bob", "body": "last", "clientId": "c-last"})
    poller.join(25)
    time.sleep(3)

    # 4. The dashboard's queries against Prometheus.
    with open(os.path.join(ROOT, "deploy", "grafana", "dashboards", "musit.json")) as f:
        board = json.load(f)
    queries = [(p["title"], t["expr"]) for p in board["panels"] if p.get("datasource", {}).get("type") == "prometheus"
               for t in p.get("targets", [])]
    check(len(queries) >= 18, "the dashboard has %d PromQL queries" % len(queries))
    exported = set()
    for port in (gw_port, stats_port, social_port, accounts_port, library_port):
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port).read().decode()
        exported |= set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))
    unknown = []
    for title, expr in queries:
        bare = re.sub(r"\b(by|without) \([^)]*\)", "", re.sub(r'"[^"]*"', "", expr))   # label values and groupings out
        for name in re.findall(r"\b((?:musit|hb|http|grpc)_[a-z0-9_]+)\b(?!\s*[=!]~?)", bare):
            if name not in exported:
                unknown.append(name)

    def ask(q):
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (prom_port, urllib.parse.urlencode({"query": q}))
        try:
            body = urllib.request.urlopen(url, timeout=10).read()
        except urllib.error.HTTPError as e:
            body = e.read()
        except OSError as e:
            return {"status": "error", "error": str(e)}
        try:
            return json.loads(body)
        except ValueError:
            return {"status": "error", "error": body[:200].decode(errors="replace")}

    # Each query until it answers with data (a rate needs two scrapes after the traffic), 20 s at most.
    empty = []
    deadline = time.time() + 20
    for title, expr in queries:
        q = expr.replace("$__rate_interval", "1m")
        while True:
            answer = ask(q)
            ok = answer.get("status") == "success" and answer["data"]["result"]
            if ok or time.time() > deadline:
                break
            time.sleep(0.5)
        if answer.get("status") != "success":
            empty.append("%s: %s" % (title, answer.get("error")))
        elif not answer["data"]["result"]:
            empty.append("%s: no data for %s" % (title, q))
    check(not unknown, "the dashboard names only metrics Musit exports (unknown: %s)" % sorted(set(unknown)))
    check(not empty, "every dashboard query parses and returns data from Prometheus:\n    " + "\n    ".join(empty))
    rules = json.load(urllib.request.urlopen("http://127.0.0.1:%d/api/v1/rules" % prom_port))
    health = [r["health"] for g in rules["data"]["groups"] for r in g["rules"]]
    check(health and all(h == "ok" for h in health), "Prometheus evaluates every alert rule (%s)" % health)
finally:
    gateway_log, stats_log, social_log, accounts_log, library_log = (logs("gateway"), logs("stats"), logs("social"),
                                                                     logs("accounts"), logs("library"))
    t_down = time.time()
    run(*compose, "down", "-v", "-t", "10", check_rc=False, timeout=180)
    down = time.time() - t_down
    if prometheus:
        prometheus.terminate()
        prometheus.wait()
    collector.shutdown()
    shutil.rmtree(work, ignore_errors=True)
check(down < 30, "podman-compose down stops and removes it all in %.1f s" % down)

# 5. The logs.
parsed = {}
for service, text in (("gateway", gateway_log), ("stats", stats_log), ("social", social_log), ("accounts", accounts_log),
                      ("library", library_log)):
    lines = [l for l in text.splitlines() if l.strip()]
    good = []
    for l in lines:
        try:
            good.append(json.loads(l))
        except ValueError:
            pass
    parsed[service] = good
    bad = [l for l in lines if not l.startswith("{")]
    check(lines and len(good) == len(lines), "%s: every log line is JSON (%d of %d)%s" % (service, len(good), len(lines),
                                                                                     "".join("\n    " + l[:200] for l in bad[:5])))
    check(all(isinstance(o.get(k), str) for o in good for k in ("time", "level", "message", "service")),
          "%s: every line has time, level, message and service" % service)
requests = [o for o in parsed["gateway"] if o.get("message") == "Request"]
check(requests and all("hb.request.id" in o for o in requests), "the gateway's request lines carry their request id%s"
      % "".join("\n    " + json.dumps(o)[:300] for o in [o for o in requests if "hb.request.id" not in o][:3]))
g = [o for o in parsed["gateway"] if o.get("trace_id") == trace_id and o.get("span_id")]
st = [o for o in parsed["stats"] if o.get("trace_id") == trace_id and o.get("span_id")]
check(g and st, "one request's trace_id is in the gateway's lines (%d) and in Stats' (%d)" % (len(g), len(st)))
chat_lines = [o for o in parsed["social"] if o.get("message") == "RPC" and o.get("grpc.method") == "musit.social.v1.Social/SendMessage"]
check(chat_lines and all(o.get("trace_id") for o in chat_lines), "Social's access lines for the chat carry their trace ids")
both = "\n".join((gateway_log, stats_log, social_log, accounts_log, library_log))
check("correct horse" not in both and not re.search(r"Bearer [A-Za-z0-9_\-.]{20,}", both) and admin not in both,
      "no password or token in any line")
with lock:
    span_services = {svc for svc, sp in SPANS if sp.trace_id.hex() == trace_id}
    record_services = {svc for svc, r in RECORDS if r.trace_id.hex() == trace_id}
# (A signed-in request may also ask Accounts who its user is, and the play asks Library for
# its song: their spans join the trace.)
check({"musit-gateway", "musit-stats"} <= span_services <= {"musit-gateway", "musit-stats", "musit-accounts", "musit-library"}
      and {"musit-gateway", "musit-stats"} <= record_services,
      "the collector got the play's spans (%s) and log records (%s) from both" % (sorted(span_services), sorted(record_services)))
finish("compose stack")
