"""`/metrics` of a live server after varied traffic: `promtool check metrics` (Debian's
prometheus) reports nothing, and the error counter counts exactly the 4xx and 5xx answers,
by status class, with no series for successes."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, check, finish, register  # noqa: E402



def scrape(port):
    status, body = Client(port).request("GET", "/metrics", raw=True)
    assert status == 200
    return body.decode()


def total(text, family, want=None):
    n = 0.0
    for line in text.splitlines():
        if line.startswith(family + "{") or line.startswith(family + " "):
            if want is None or all(w in line for w in want):
                n += float(line.rsplit(" ", 1)[1])
    return n


def main():
    server = Server().start()
    try:
        token = register(server.port, "metrics")
        me = Client(server.port, token)
        anon = Client(server.port)
        expected = {"4xx": 0}
        for _ in range(10):
            me.request("GET", "/api/v1/me")
            anon.request("GET", "/healthz")
        before = scrape(server.port)
        bad = [
            (anon, "GET", "/api/v1/me"),                     # 401
            (me, "GET", "/api/v1/songs/999"),                # 404
            (me, "GET", "/no/such/path"),                    # 404 unmatched
            (me, "DELETE", "/healthz"),                      # 405
            (me, "GET", "/api/v1/events?cursor=abc"),        # 400
            (me, "POST", "/api/v1/messages"),                # 400 (no body)
        ]
        for client, method, path in bad * 7:
            status, _ = client.request(method, path, raw=True)
            if 400 <= status < 500:
                expected["4xx"] += 1
        for _ in range(5):
            me.request("GET", "/api/v1/me")
            me.request("HEAD", "/api/v1/me")
        after = scrape(server.port)
        counted = total(after, "hb_request_errors_total", ['status_class="4xx"']) - \
            total(before, "hb_request_errors_total", ['status_class="4xx"'])
        check(expected["4xx"] == 42 and counted == 42,
              "hb_request_errors_total rose by the 42 client errors sent (%d sent, %d counted)" % (expected["4xx"], counted))
        successes = [l for l in after.splitlines() if l.startswith("hb_request_errors_total") and re.search(r'error_type="[123]', l)]
        check(not successes, "no error series for answers that are not errors (%d)" % len(successes))
        check(total(after, "hb_requests_total", ['http_request_method="HEAD"']) >= 5, "HEAD requests are counted as HEAD")
        path = os.path.join(server.data, "metrics.txt")
        with open(path, "w") as f:
            f.write(after)
        p = subprocess.run(["promtool", "check", "metrics"], input=after.encode(), capture_output=True)
        report = (p.stdout + p.stderr).decode().strip()
        check(p.returncode == 0 and report == "", "promtool check metrics reports nothing (%r)" % report[:500])
        families = re.findall(r"^# TYPE (\S+) (\S+)", after, re.M)
        helps = set(re.findall(r"^# HELP (\S+) ", after, re.M))
        check(len(families) >= 6 and all(name in helps for name, _ in families),
              "every one of the %d families has HELP" % len(families))
        check(all(name.endswith("_total") for name, kind in families if kind == "counter"), "counters end in _total")
        check(all(name.endswith("_seconds") for name, kind in families if kind == "histogram"), "durations are in _seconds")
    finally:
        server.stop()
    finish("metrics")


if __name__ == "__main__":
    main()
