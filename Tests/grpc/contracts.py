"""The Stats service alone (`--serve --role stats`), called by a stock Python grpcio client
generated from proto/: every method, the standard health service (grpcio-health-checking's
own stubs as well as ours), errors with their status codes, and hostile input: garbage
bytes, oversized messages and unknown methods get an error status, the process stays up
and its memory stays bounded."""
import os
import sys
import time

import grpc
from grpc_health.v1 import health_pb2 as std_health, health_pb2_grpc as std_health_grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Server, check, finish, free_port  # noqa: E402
import stubs  # noqa: E402
from stubs import code_of  # noqa: E402

stats_pb2, stats_grpc, _ = stubs.generate()

grpc_port = free_port()
server = Server(args=["--role", "stats", "--grpc-port", str(grpc_port)], log_name="stats.log").start()
channel = grpc.insecure_channel("127.0.0.1:%d" % grpc_port)
stats = stats_grpc.StatsStub(channel)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


try:
    # Health, through grpcio-health-checking's own stubs.
    health = std_health_grpc.HealthStub(channel)
    for name in ["", "musit.stats.v1.Stats"]:
        r = health.Check(std_health.HealthCheckRequest(service=name), timeout=5)
        check(r.status == std_health.HealthCheckResponse.SERVING, "health of %r is SERVING" % name)
    check(code_of(lambda: health.Check(std_health.HealthCheckRequest(service="musit.nope.v1.Nope"), timeout=5))
          == grpc.StatusCode.NOT_FOUND, "health of an unknown service is NOT_FOUND")
    watch = health.Watch(std_health.HealthCheckRequest(service="musit.stats.v1.Stats"), timeout=5)
    first = next(watch)
    check(first.status == std_health.HealthCheckResponse.SERVING, "Watch starts with SERVING")
    watch.cancel()

    # Every method, with the codes its contract names.
    start = stats.RecordPlay(stats_pb2.RecordPlayRequest(user_id=7, song_id=3, event=stats_pb2.PLAY_EVENT_START,
                                                         title="Song Three", artist="Artist"), timeout=5)
    check(start.play_id > 0, "RecordPlay START gives a play id (%d)" % start.play_id)
    for event in [stats_pb2.PLAY_EVENT_PROGRESS, stats_pb2.PLAY_EVENT_END]:
        r = stats.RecordPlay(stats_pb2.RecordPlayRequest(user_id=7, song_id=3, event=event, play_id=start.play_id,
                                                         position=12.5), timeout=5)
        check(r.play_id == start.play_id, "RecordPlay %s answers the same play" % stats_pb2.PlayEvent.Name(event))
    cases = [
        ("another user's play", stats_pb2.RecordPlayRequest(user_id=8, song_id=3, event=stats_pb2.PLAY_EVENT_END,
                                                             play_id=start.play_id), grpc.StatusCode.NOT_FOUND),
        ("a negative position", stats_pb2.RecordPlayRequest(user_id=7, song_id=3, event=stats_pb2.PLAY_EVENT_START,
                                                             title="x", position=-1), grpc.StatusCode.INVALID_ARGUMENT),
        ("a NaN position", stats_pb2.RecordPlayRequest(user_id=7, song_id=3, event=stats_pb2.PLAY_EVENT_START,
                                                        title="x", position=float("nan")), grpc.StatusCode.INVALID_ARGUMENT),
        ("progress without a play", stats_pb2.RecordPlayRequest(user_id=7, song_id=3, event=stats_pb2.PLAY_EVENT_PROGRESS),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("no event", stats_pb2.RecordPlayRequest(user_id=7, song_id=3), grpc.StatusCode.INVALID_ARGUMENT),
        ("a start without a title", stats_pb2.RecordPlayRequest(user_id=7, song_id=3, event=stats_pb2.PLAY_EVENT_START),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("a title of 5000 bytes", stats_pb2.RecordPlayRequest(user_id=7, song_id=3, event=stats_pb2.PLAY_EVENT_START,
                                                               title="é" * 2500), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for what, request, expected in cases:
        got = code_of(lambda: stats.RecordPlay(request, timeout=5))
        check(got == expected, "RecordPlay with %s: %s (got %s)" % (what, expected.name, got.name))
    for _ in range(2):
        stats.RecordPlay(stats_pb2.RecordPlayRequest(user_id=7, song_id=4, event=stats_pb2.PLAY_EVENT_START,
                                                     title="Song Four"), timeout=5)
    o = stats.Overview(stats_pb2.OverviewRequest(days=7), timeout=5)
    check(len(o.plays_per_day) == 7 and o.plays_per_day[-1].plays == 3,
          "Overview: 7 days, today's 3 plays last (%s)" % [(d.day, d.plays) for d in o.plays_per_day][-2:])
    check([(s.song_id, s.title, s.plays) for s in o.top_songs] == [(4, "Song Four", 2), (3, "Song Three", 1)],
          "Overview: top songs by plays, with the titles their plays kept")
    check([(a.artist, a.plays) for a in o.top_artists] == [("Artist", 1)], "Overview: top artists")
    check(code_of(lambda: stats.Overview(stats_pb2.OverviewRequest(days=400), timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT,
          "Overview of 400 days is INVALID_ARGUMENT")

    # Forget: idempotent, and what it forgot stays refused.
    r1 = stats.Forget(stats_pb2.ForgetRequest(song_ids=[4]), timeout=5)
    r2 = stats.Forget(stats_pb2.ForgetRequest(song_ids=[4]), timeout=5)
    check((r1.plays_forgotten, r2.plays_forgotten) == (2, 0), "Forget twice: 2 plays, then none (%d, %d)"
          % (r1.plays_forgotten, r2.plays_forgotten))
    got = code_of(lambda: stats.RecordPlay(stats_pb2.RecordPlayRequest(user_id=7, song_id=4, event=stats_pb2.PLAY_EVENT_START,
                                                                         title="Song Four"), timeout=5))
    check(got == grpc.StatusCode.FAILED_PRECONDITION, "a play of a forgotten song: FAILED_PRECONDITION (%s)" % got.name)
    stats.Forget(stats_pb2.ForgetRequest(user_ids=[7]), timeout=5)
    o = stats.Overview(stats_pb2.OverviewRequest(days=1), timeout=5)
    check(len(o.top_songs) == 0 and o.plays_per_day[-1].plays == 0, "Forget of the user: no plays left")
    check(code_of(lambda: stats.Forget(stats_pb2.ForgetRequest(song_ids=list(range(1, 1002))), timeout=5))
          == grpc.StatusCode.INVALID_ARGUMENT, "Forget of 1,001 subjects: INVALID_ARGUMENT")

    # Hostile input: raw bytes through the same methods.
    raw_play = channel.unary_unary("/musit.stats.v1.Stats/RecordPlay")
    raw_nope = channel.unary_unary("/musit.stats.v1.Nope/Nothing")
    before = rss_kib(server.proc.pid)
    codes = set()
    for i in range(200):
        codes.add(code_of(lambda: raw_play(bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) * (i + 1), timeout=5)))
    check(codes <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL},
          "200 garbage messages: each an error status (%s)" % sorted(c.name for c in codes))
    big = code_of(lambda: raw_play(b"\x0a" + b"\x80" * 3 + b"\x01" + b"x" * (2 << 20), timeout=10))
    # grpc-swift resets the stream of a message over the limit before reading it (the
    # client sees CANCELLED; gRPC's C core says RESOURCE_EXHAUSTED): either is an error.
    check(big in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED),
          "a 2 MiB message (limit 1 MiB) is refused unread (%s)" % big.name)
    for _ in range(50):
        code_of(lambda: raw_play(b"y" * (8 << 20), timeout=10))
    check(code_of(lambda: raw_nope(b"", timeout=5)) == grpc.StatusCode.UNIMPLEMENTED, "an unknown method: UNIMPLEMENTED")
    after = rss_kib(server.proc.pid)
    check(server.proc.poll() is None, "the service is still up")
    check(after - before < 64 * 1024, "memory after 50 messages of 8 MiB: +%d KiB (bound 64 MiB)" % (after - before))
    r = health.Check(std_health.HealthCheckRequest(service=""), timeout=5)
    check(r.status == std_health.HealthCheckResponse.SERVING, "and still SERVING")

    # Its metrics, as Prometheus reads them.
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    check('grpc_server_handled_total{grpc_service="musit.stats.v1.Stats",grpc_method="RecordPlay",grpc_code="NotFound"} 1' in text,
          "grpc_server_handled_total counts the NOT_FOUND")
    check('grpc_server_handling_seconds_bucket{grpc_service="musit.stats.v1.Stats",grpc_method="Overview"' in text,
          "grpc_server_handling_seconds has Overview's latency")
    import subprocess
    with open(os.path.join(server.data, "metrics.txt"), "w") as f:
        f.write(text)
    lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    check(lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(),
          "promtool check metrics is clean (%s)" % (lint.stdout + lint.stderr).strip()[:300])

    # Shutdown: SIGTERM ends the process promptly.
    t0 = time.time()
    server.stop()
    check(server.proc.returncode == 0 and time.time() - t0 < 5,
          "SIGTERM: exit %s in %.2f s" % (server.proc.returncode, time.time() - t0))
finally:
    channel.close()
    server.stop()
finish("grpc contracts")
