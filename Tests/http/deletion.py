"""Deleting an account over HTTP: the password is asked again, and afterwards nothing of the
user answers: access and refresh tokens, media tokens already used (cached) or not, their
songs and files; friends are told."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, befriend, check, finish  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUDIO = os.environ.get("MUSIT_TEST_AUDIO", os.path.join(ROOT, ".build", "test-audio"))


def main():
    server = Server().start()
    port = server.port
    try:
        s, leaving = Client(port).request("POST", "/api/v1/auth/register", {"username": "leaving", "password": "correct horse"})
        s, staying = Client(port).request("POST", "/api/v1/auth/register", {"username": "staying", "password": "correct horse"})
        token, other = leaving["accessToken"], staying["accessToken"]
        befriend(port, token, "staying", other, "leaving")
        me = Client(port, token)
        with open(os.path.join(AUDIO, "sine440.mp3"), "rb") as f:
            s, song = me.request("POST", "/api/v1/songs", f.read(), {"Content-Type": "audio/mpeg"})
        sid = song["id"]
        with open(os.path.join(AUDIO, "sine1k_48k.mp3"), "rb") as f:
            s, theirs = Client(port, other).request("POST", "/api/v1/songs", f.read(), {"Content-Type": "audio/mpeg"})
        _, borrowed = me.request("GET", "/api/v1/songs/%d/stream" % theirs["id"])
        s, _ = Client(port).request("GET", borrowed["audio"], raw=True)
        check(s == 200, "the user streams a friend's song by media token (%d)" % s)
        _, used = me.request("GET", "/api/v1/songs/%d/stream" % sid)
        _, unused = me.request("GET", "/api/v1/songs/%d/stream" % sid)
        s, _ = Client(port).request("GET", used["audio"], raw=True)
        check(s == 200, "a media token streams while its user exists (%d)" % s)
        s, _ = me.request("DELETE", "/api/v1/me", {"password": "wrong horse"})
        s2, _ = me.request("GET", "/api/v1/me")
        check(s == 403 and s2 == 200, "a wrong password deletes nothing (%d, then /me %d)" % (s, s2))
        s, _ = me.request("DELETE", "/api/v1/me", {"password": "correct horse"})
        check(s == 204, "the right password deletes the account (%d)" % s)
        for name, url in [("cached, for a song that stays,", borrowed["audio"]), ("used (cached)", used["audio"]), ("unused", unused["audio"]), ("HLS", unused["hls"])]:
            s, _ = Client(port).request("GET", url, raw=True)
            check(s == 401, "the %s media token of the deleted user is refused (%d)" % (name, s))
        s, _ = me.request("GET", "/api/v1/me")
        check(s == 401, "the access token is refused (%d)" % s)
        s, _ = Client(port).request("POST", "/api/v1/auth/refresh", {"refreshToken": leaving["refreshToken"]})
        check(s == 401, "the refresh token is refused (%d)" % s)
        s, _ = Client(port).request("POST", "/api/v1/auth/login", {"username": "leaving", "password": "correct horse"})
        check(s == 401, "the account cannot sign in (%d)" % s)
        friend = Client(port, other)
        s, _ = friend.request("GET", "/api/v1/songs/%d/audio" % sid, raw=True)
        check(s == 404, "the user's song is gone for others (%d)" % s)
        media = os.path.join(server.data, "media")
        left = [n for _, _, files in os.walk(media) for n in files if n.startswith("%d." % sid)]
        check(not left, "its files are removed (%s)" % left)
        s, friends = friend.request("GET", "/api/v1/friends")
        s, page = friend.request("GET", "/api/v1/events?cursor=0&timeout=0")
        kinds = [(e["kind"], e.get("user")) for e in page["events"]]
        check(all(f["username"] != "leaving" for f in friends["friends"]) and ("friend.removed", "leaving") in kinds,
              "the friend no longer has them, and was told (%s)" % kinds[-2:])
        s, again = Client(port).request("POST", "/api/v1/auth/register", {"username": "leaving", "password": "another horse"})
        s2, _ = Client(port).request("GET", unused["audio"], raw=True)
        check(s == 201 and s2 == 401, "the name can be taken again, and the old tokens stay refused (%d, %d)" % (s, s2))
    finally:
        server.stop()
    finish("deletion")


if __name__ == "__main__":
    main()
