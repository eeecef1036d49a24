"""The alert rules name only metrics that Musit exports: a server is given a workload
(register, upload, a play, the admin statistics: an in-process gRPC call), then every
metric that deploy/prometheus/alerts.yml reads must be in its /metrics."""
import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, check, finish, register  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))
FUNCTIONS = {"sum", "rate", "by", "and", "or", "max_over_time", "histogram_quantile", "predict_linear", "le", "job",
             "role", "instance", "grpc_service", "grpc_code", "http_route", "http_response_status_code", "humanizePercentage",
             "humanizeDuration", "labels", "value"}

with open(os.path.join(ROOT, "deploy", "prometheus", "alerts.yml")) as f:
    rules = f.read()
exprs = re.findall(r"expr: \|\n((?:\s{10}.*\n)+)|expr: (.*)\n", rules)
names = set()
for block, line in exprs:
    text = re.sub(r'"[^"]*"', "", block or line)   # drop label values
    text = re.sub(r"\[[^\]]*\]", "", text)          # and range selectors ([5m])
    for name in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        if name not in FUNCTIONS and not name.isdigit():
            names.add(name)
names.discard("up")   # Prometheus's own
check(len(names) >= 5, "the rules read %d Musit metrics: %s" % (len(names), sorted(names)))

server = Server().start()
try:
    token = register(server.port, "ann")
    c = Client(server.port, token)
    with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
        s, song = c.request("POST", "/api/v1/songs", f.read(), {"Content-Type": "audio/mpeg"})
    c.request("POST", "/api/v1/plays", {"songId": song["id"], "event": "start", "position": 0})
    c.request("GET", "/api/v1/admin/stats")
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % server.port).read().decode()
finally:
    server.stop()
exported = set(re.findall(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)", text, re.M))
missing = sorted(n for n in names if n not in exported)
check(not missing, "every metric the rules read is exported after a workload (missing: %s)" % missing)
finish("rules and metrics")
