"""Traces across the split: an OTLP/HTTP receiver (opentelemetry-proto, answering with the
protobuf content type) gets, for one play started with a W3C `traceparent`, the gateway's
server span (its parent the incoming span), the gateway's client span for the gRPC call,
Stats' server span under it from the other process, and Stats' database span under that:
one trace id. The exporters batch for a minute, so everything arrives only because SIGTERM
flushes it. The JSON log lines written inside the request's span carry its ids. With no
endpoint set, no span is made (checked by the absence of any export)."""
import json
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, befriend, check, finish, free_port, register  # noqa: E402
from otlp import Collector  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))

collector = Collector()
SPANS, RECORDS, EXPORTS, lock = collector.spans, collector.records, collector.exports, collector.lock

otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_BSP_SCHEDULE_DELAY": "60000", "OTEL_BLRP_SCHEDULE_DELAY": "60000", "MUSIT_LOG_FORMAT": "json", "MUSIT_LOG_LEVEL": "info"}

grpc = free_port()
stats = Server(args=["--role", "stats", "--grpc-port", str(grpc)], log_name="stats.log", extra_env=otel)
stats.start()
social_grpc = free_port()
social = Server(data=stats.data, args=["--role", "social", "--grpc-port", str(social_grpc)], log_name="social.log",
                extra_env=otel)
social.start()
gateway = Server(data=stats.data, args=["--role", "gateway", "--stats", "127.0.0.1:%d" % grpc,
                                        "--social", "127.0.0.1:%d" % social_grpc], log_name="gateway.log", extra_env=otel)
gateway.start()
trace_id = secrets.token_hex(16)
parent_id = secrets.token_hex(8)
chat_trace = secrets.token_hex(16)
try:
    token = register(gateway.port, "ann")
    c = Client(gateway.port, token)
    with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
        s, song = c.request("POST", "/api/v1/songs", f.read(), {"Content-Type": "audio/mpeg"})
    assert s == 201, (s, song)
    s, _ = c.request("POST", "/api/v1/plays", {"songId": song["id"], "event": "start", "position": 0},
                     {"traceparent": "00-%s-%s-01" % (trace_id, parent_id)})
    check(s == 201, "a play started with a traceparent (%s)" % s)
    bob = register(gateway.port, "bob")
    befriend(gateway.port, token, "bob", bob, "ann")
    s, _ = c.request("POST", "/api/v1/messages", {"to": "bob", "body": "traced", "clientId": "t1"},
                     {"traceparent": "00-%s-%s-01" % (chat_trace, parent_id)})
    check(s == 201, "a chat message sent with a traceparent (%s)" % s)
    time.sleep(0.3)
    with lock:
        early = len(SPANS) + len(RECORDS)
    check(early == 0, "nothing exported yet: the batches wait (%d spans and records)" % early)
finally:
    gateway.stop()
    stats.stop()
    social.stop()
collector.shutdown()

mine = [(svc, sp) for svc, sp in SPANS if sp.trace_id.hex() == trace_id]
by_id = {sp.span_id.hex(): (svc, sp) for svc, sp in mine}
KIND_SERVER, KIND_CLIENT = 2, 3
server = [(svc, sp) for svc, sp in mine if svc == "musit-gateway" and sp.kind == KIND_SERVER]
check(len(server) == 1 and server[0][1].parent_span_id.hex() == parent_id,
      "the gateway's server span, its parent the incoming span (%s)" % [(s.name, s.parent_span_id.hex()) for _, s in server])


def under(span, ancestor_id):
    seen = 0
    while span is not None and seen < 20:
        if span.parent_span_id.hex() == ancestor_id:
            return True
        span = by_id.get(span.parent_span_id.hex(), (None, None))[1]
        seen += 1
    return False


client = [sp for svc, sp in mine if svc == "musit-gateway" and sp.kind == KIND_CLIENT and sp.name == "musit.stats.v1.Stats/RecordPlay"]
check(len(client) == 1 and server and under(client[0], server[0][1].span_id.hex()),
      "a client span for musit.stats.v1.Stats/RecordPlay under it")
remote = [sp for svc, sp in mine if svc == "musit-stats" and sp.kind == KIND_SERVER]
check(len(remote) == 1 and client and remote[0].parent_span_id == client[0].span_id,
      "Stats' server span, from the other process, under the client span")
db = [sp for svc, sp in mine if svc == "musit-stats" and sp.name == "sqlite write"]
check(len(db) >= 1 and remote and under(db[0], remote[0].span_id.hex()), "and Stats' database span under that")
check(len({sp.trace_id for _, sp in mine}) == 1 and len(mine) >= 4, "one trace id over %d spans in two processes" % len(mine))

# The chat message: the gateway's spans, then Social's in its own process, and its database.
chat = [(svc, sp) for svc, sp in SPANS if sp.trace_id.hex() == chat_trace]
chat_by_id = {sp.span_id.hex(): sp for _, sp in chat}
g_server = [sp for svc, sp in chat if svc == "musit-gateway" and sp.kind == KIND_SERVER]
g_client = [sp for svc, sp in chat if svc == "musit-gateway" and sp.kind == KIND_CLIENT and sp.name == "musit.social.v1.Social/SendMessage"]
s_server = [sp for svc, sp in chat if svc == "musit-social" and sp.kind == KIND_SERVER]
s_db = [sp for svc, sp in chat if svc == "musit-social" and sp.name == "sqlite write"]
check(len(g_server) == 1 and g_server[0].parent_span_id.hex() == parent_id, "chat: the gateway's server span under the incoming one")
check(len(g_client) == 1 and chat_by_id.get(g_client[0].parent_span_id.hex()) is not None,
      "a client span for musit.social.v1.Social/SendMessage in the request")
check(len(s_server) == 1 and g_client and s_server[0].parent_span_id == g_client[0].span_id,
      "Social's server span, in its own process, under the client span")
check(s_db and s_server and s_db[0].parent_span_id == s_server[0].span_id, "and Social's database span under that")
check("/v1/traces" in EXPORTS and set(EXPORTS) <= {"/v1/traces", "/v1/logs"},
      "exported to /v1/traces at shutdown (%d exports)" % len(EXPORTS))

# OTLP logs: the same records as the JSON lines, each in its span's trace.
check("/v1/logs" in EXPORTS, "log records exported to /v1/logs")
traced = {}
for svc, r in RECORDS:
    if r.trace_id.hex() == trace_id:
        traced.setdefault(svc, []).append(r)
check(set(traced) == {"musit-gateway", "musit-stats"},
      "records of the play in both processes carry its trace id (%s)" % {k: len(v) for k, v in traced.items()})
check(any(r.body.string_value == "RPC" and r.span_id for r in traced.get("musit-stats", [])),
      "Stats' access line for the call is one of them, with its span id")
secrets_seen = [r.body.string_value for _, r in RECORDS if "correct horse" in str(r) or "Bearer " in str(r)]
check(not secrets_seen, "no password or token in any exported record")

lines = []
with open(os.path.join(stats.data, "gateway.log")) as f:
    for line in f:
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
check(lines and all(isinstance(l.get(k), str) for l in lines for k in ("time", "level", "message", "service")),
      "every JSON line has time, level, message and service (%d lines)" % len(lines))
check({l.get("service") for l in lines} == {"musit-gateway"}, "the gateway's lines say service musit-gateway")
check(any("hb.request.id" in l for l in lines), "and requests' lines their request id")
tagged = [l for l in lines if l.get("trace_id") == trace_id]
check(tagged and all(l.get("span_id") for l in tagged),
      "the gateway's JSON log lines inside the request carry trace_id and span_id (%d lines)" % len(tagged))
with open(os.path.join(stats.data, "stats.log")) as f:
    stats_lines = [json.loads(l) for l in f if l.startswith("{")]
remote_tagged = [l for l in stats_lines if l.get("trace_id") == trace_id]
check(any(l.get("message") == "RPC" and l.get("grpc.method") == "musit.stats.v1.Stats/RecordPlay" for l in remote_tagged),
      "Stats' JSON access line for the call has the same trace_id as the gateway's (%d lines)" % len(remote_tagged))

# Off without an endpoint: no export at all (to a collector nobody names).
collector = Collector()
EXPORTS = collector.exports
plain = Server(extra_env={"MUSIT_LOG_FORMAT": "json", "MUSIT_LOG_LEVEL": "info"})
plain.start()
try:
    token = register(plain.port, "ann")
    Client(plain.port, token).request("GET", "/api/v1/me", None, {"traceparent": "00-%s-%s-01" % (trace_id, parent_id)})
finally:
    plain.stop()
collector.shutdown()
check(not EXPORTS, "no endpoint: nothing exported")
with open(os.path.join(plain.data, "server.log")) as f:
    check("trace_id" not in f.read(), "and no trace ids in the log")
finish("tracing")
