"""HTTP semantics against a live `musit-tui --serve` (RFC 9110): HEAD wherever GET is
(with Range on /audio), 405 with Allow for a wrong method on every route, OPTIONS,
conditional requests, and CORS off by default and on for configured origins only.
Every route the server lists in its OpenAPI document is tried."""
import os
import sys

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, check, finish, register  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))


def req(port, method, path, token=None, headers=None, body=None):
    c = Client(port, token)
    h = dict(headers or {})
    if c.token:
        h["Authorization"] = "Bearer " + c.token
    c.conn = __import__("http.client").client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.conn.request(method, path, body=body, headers=h)
    r = c.conn.getresponse()
    data = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def main():
    server = Server(extra_env={"MUSIT_CORS_ORIGINS": "https://player.example"}).start()
    plain = Server().start()
    try:
        token = register(server.port, "semantics")
        with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
            mp3 = f.read()
        s, body = Client(server.port, token).request("POST", "/api/v1/songs", mp3, {"Content-Type": "audio/mpeg"})
        check(s == 201, "upload (%d)" % s)
        song = body["id"]
        audio = "/api/v1/songs/%d/audio" % song

        # HEAD: GET's status and headers, no body.
        for path in ["/healthz", "/api/v1/me", "/api/v1/songs", audio, "/api/v1/songs/%d" % song, "/metrics"]:
            gs, gh, gb = req(server.port, "GET", path, token)
            hs, hh, hb = req(server.port, "HEAD", path, token)
            # /metrics changes between the two requests; its length may too.
            same = gs == hs and gh.get("content-type") == hh.get("content-type") and \
                (path == "/metrics" or gh.get("content-length") == hh.get("content-length"))
            check(same and hb == b"", "HEAD %s = GET's status and headers, no body (%d/%d, length %s/%s)"
                  % (path, gs, hs, gh.get("content-length"), hh.get("content-length")))
        hs, hh, hb = req(server.port, "HEAD", audio, token, {"Range": "bytes=100-199"})
        check(hs == 206 and hh.get("content-range") == "bytes 100-199/%d" % len(mp3) and hh.get("content-length") == "100" and hb == b"",
              "HEAD with Range: 206, Content-Range, length 100, no body (%d %s)" % (hs, hh.get("content-range")))
        hs, _, _ = req(server.port, "HEAD", "/api/v1/no-such-thing", token)
        check(hs == 404, "HEAD of a missing path is 404 (%d)" % hs)

        # 405 with Allow for every route and every method it does not take.
        s, _, doc = req(server.port, "GET", "/openapi.yaml")
        paths = yaml.safe_load(doc)["paths"] if s == 200 else {}
        check(len(paths) >= 10, "the OpenAPI document lists the routes (%d)" % len(paths))
        wrong = 0
        tried = 0
        for template, ops in paths.items():
            path = template.replace("{id}", str(song)).replace("{username}", "semantics").replace("{segment}", "0.ts")
            for p in ["{clientId}", "{messageId}", "{name}"]:
                path = path.replace(p, "x")
            taken = {m.upper() for m in ops if m in ("get", "post", "put", "patch", "delete")}
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE"]:
                if method in taken:
                    continue
                tried += 1
                st, hd, bd = req(server.port, method, path, token, body=b"" if method != "GET" else None)
                allow = {a.strip() for a in hd.get("allow", "").split(",")}
                if st != 405 or not taken <= allow or hd.get("content-type") != "application/problem+json":
                    wrong += 1
                    print("     %s %s -> %d allow=%s" % (method, path, st, hd.get("allow")))
        check(tried > 20 and wrong == 0, "%d wrong-method requests answer 405 with Allow naming the route's methods (%d wrong)" % (tried, wrong))
        st, hd, _ = req(server.port, "OPTIONS", audio)
        check(st == 204 and "GET" in hd.get("allow", "") and "HEAD" in hd.get("allow", ""), "OPTIONS gives 204 and Allow (%d %s)" % (st, hd.get("allow")))

        # Preconditions on the audio (strong ETag, Last-Modified).
        _, h, _ = req(server.port, "GET", audio, token)
        etag, modified = h.get("etag"), h.get("last-modified")
        cases = [
            ({"If-None-Match": etag}, 304), ({"If-None-Match": "W/" + etag}, 304), ({"If-None-Match": "*"}, 304),
            ({"If-None-Match": '"other", ' + etag}, 304), ({"If-None-Match": '"other"'}, 200),
            ({"If-Modified-Since": modified}, 304), ({"If-Modified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200),
            ({"If-Modified-Since": "Sunday, 06-Nov-94 08:49:37 GMT"}, 200), ({"If-Modified-Since": "garbage"}, 200),
            ({"If-None-Match": '"other"', "If-Modified-Since": modified}, 200),
            ({"If-Match": etag}, 200), ({"If-Match": "*"}, 200), ({"If-Match": '"other"'}, 412), ({"If-Match": "W/" + etag}, 412),
            ({"If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 412), ({"If-Unmodified-Since": modified}, 200),
            ({"If-Match": etag, "If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"}, 200),
            ({"If-Match": etag, "If-None-Match": etag}, 304),
            ({"Range": "bytes=0-9", "If-None-Match": etag}, 304), ({"Range": "bytes=0-9", "If-Match": '"x"'}, 412),
        ]
        for headers, want in cases:
            st, hd, bd = req(server.port, "GET", audio, token, headers)
            hs, _, _ = req(server.port, "HEAD", audio, token, headers)
            ok = st == want == hs and (want != 304 or (bd == b"" and hd.get("etag") == etag))
            check(ok, "GET/HEAD with %s -> %d (got %d/%d)" % (headers, want, st, hs))

        # CORS: the configured origin is allowed, another is not, and off by default.
        st, hd, _ = req(server.port, "GET", audio, token, {"Origin": "https://player.example", "Range": "bytes=0-9"})
        check(st == 206 and hd.get("access-control-allow-origin") == "https://player.example" and "Content-Range" in hd.get("access-control-expose-headers", ""),
              "a configured origin may read the audio and its Content-Range (%s)" % hd.get("access-control-allow-origin"))
        st, hd, _ = req(server.port, "OPTIONS", audio, None, {"Origin": "https://player.example", "Access-Control-Request-Method": "GET",
                                                             "Access-Control-Request-Headers": "authorization, range"})
        check(st == 204 and hd.get("access-control-allow-origin") == "https://player.example" and "GET" in hd.get("access-control-allow-methods", "")
              and "authorization" in hd.get("access-control-allow-headers", "") and "range" in hd.get("access-control-allow-headers", ""),
              "a preflight from the configured origin is allowed (%d %s)" % (st, hd))
        for port, origin, what in [(server.port, "https://evil.example", "another origin"), (plain.port, "https://player.example", "any origin when CORS is off")]:
            st, hd, _ = req(port, "OPTIONS", "/api/v1/me", None, {"Origin": origin, "Access-Control-Request-Method": "GET"})
            st2, hd2, _ = req(port, "GET", "/healthz", None, {"Origin": origin})
            check("access-control-allow-origin" not in hd and "access-control-allow-origin" not in hd2,
                  "no CORS headers for %s" % what)
        st, hd, _ = req(server.port, "GET", "/api/v1/me", None, {"Origin": "https://player.example"})
        check(st == 401 and hd.get("access-control-allow-origin") == "https://player.example" and "WWW-Authenticate" in hd.get("access-control-expose-headers", ""),
              "a 401 to an allowed origin is readable, with WWW-Authenticate exposed (%d)" % st)
    finally:
        server.stop()
        plain.stop()
    finish("semantics")


if __name__ == "__main__":
    main()
