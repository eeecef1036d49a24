"""The per-user event logs stay bounded: with a retention of 2 s pruned every second, a
client whose cursor fell below what was dropped gets 410 with where to resume, resumes
there and then gets every later event; a cursor inside what is kept is answered as usual.
Under MUSIT_SPLIT=1 the Social service prunes (the gateway does not own the logs)."""
import time

from common import Client, Server, befriend, check, finish, register

server = Server(extra_env={"MUSIT_EVENT_RETENTION": "2", "MUSIT_EVENT_PRUNE_INTERVAL": "1"}).start()
try:
    ann = register(server.port, "ann")
    bob = register(server.port, "bob")
    befriend(server.port, ann, "bob", bob, "ann")
    A, B = Client(server.port, ann), Client(server.port, bob)
    s, first = B.request("GET", "/api/v1/events?cursor=0&timeout=0")
    check(s == 200 and first["events"], "bob's log has his first events (%d)" % len(first.get("events", [])))
    time.sleep(4)
    s, _ = A.request("POST", "/api/v1/messages", {"to": "bob", "body": "after the pruning", "clientId": "r1"})
    s, gone = B.request("GET", "/api/v1/events?cursor=0&timeout=0")
    check(s == 410 and gone.get("resumeFrom", 0) >= first["cursor"],
          "a cursor below the pruned history: 410 with where to resume (%s, %s)" % (s, gone))
    s, page = B.request("GET", "/api/v1/events?cursor=%d&timeout=0" % gone["resumeFrom"])
    bodies = [e["message"]["body"] for e in page.get("events", []) if e["kind"] == "chat.message"]
    check(s == 200 and bodies == ["after the pruning"], "resumed there, the later message arrives (%s, %s)" % (s, bodies))
    s, page = B.request("GET", "/api/v1/events?cursor=%d&timeout=0" % page["cursor"])
    check(s == 200 and not page["events"], "and a cursor at the head waits as usual (%s)" % s)
finally:
    server.stop()
finish("event retention")
