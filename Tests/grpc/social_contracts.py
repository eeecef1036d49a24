"""The Social service alone (`--serve --role social`), called by a stock Python grpcio
client generated from proto/: its health, every method with the codes its contract names,
events as the public API's JSON, and hostile input (garbage, oversized and unknown ids)
answered with an error status while the process stays up. Its users are made through a
gateway on the same data, as in a deployment."""
import json
import os
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2 as std_health, health_pb2_grpc as std_health_grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, check, finish, free_port, register  # noqa: E402
import stubs  # noqa: E402
from stubs import code_of  # noqa: E402

stubs.generate()
pb, pb_grpc = stubs.social()

grpc_port = free_port()
social = Server(args=["--role", "social", "--grpc-port", str(grpc_port)], log_name="social.log").start()
gateway = Server(data=social.data, args=["--role", "gateway", "--social", "127.0.0.1:%d" % grpc_port],
                 log_name="gateway.log").start()
channel = grpc.insecure_channel("127.0.0.1:%d" % grpc_port)
stub = pb_grpc.SocialStub(channel)


try:
    register(gateway.port, "ann")
    register(gateway.port, "bob")
    _, me = Client(gateway.port, register(gateway.port, "cyd")).request("GET", "/api/v1/me")
    ids = {}
    for name in ("ann", "bob"):
        _, u = Client(gateway.port).request("POST", "/api/v1/auth/login", {"username": name, "password": "correct horse"})
        _, info = Client(gateway.port, u["accessToken"]).request("GET", "/api/v1/me")
        ids[name] = info["id"]
    ann = pb.Person(id=ids["ann"], username="ann")
    bob = pb.Person(id=ids["bob"], username="bob")

    health = std_health_grpc.HealthStub(channel)
    for name in ["", "musit.social.v1.Social"]:
        r = health.Check(std_health.HealthCheckRequest(service=name), timeout=5)
        check(r.status == std_health.HealthCheckResponse.SERVING, "health of %r is SERVING" % name)

    # Subscribe: a stream of notices of every change below, as the gateways hear them.
    notices, answered = [], []
    feed = stub.Subscribe(pb.SubscribeRequest())
    threading.Thread(target=lambda: [notices.append(n) for n in feed], daemon=True).start()
    deadline = time.time() + 5
    while not notices and time.time() < deadline:   # subscribed: the first notice (a reset) came
        time.sleep(0.01)

    def told(r):
        answered.extend((e.user_id, json.loads(e.event_json)["id"]) for e in r.events)
        return r

    r = told(stub.RequestFriend(pb.PairRequest(**{"from": ann, "to": bob}), timeout=5))
    check(r.outcome == pb.FRIEND_REQUEST_OUTCOME_REQUESTED and len(r.events) == 1 and r.events[0].user_id == ids["bob"],
          "RequestFriend: REQUESTED, with bob's event")
    event = json.loads(r.events[0].event_json)
    check(event["kind"] == "friend.request" and event["user"] == "ann" and event["id"] >= 1,
          "events are the public API's JSON with their ids (%s)" % event)
    r = stub.RequestFriend(pb.PairRequest(**{"from": ann, "to": bob}), timeout=5)
    check(r.outcome == pb.FRIEND_REQUEST_OUTCOME_ALREADY_REQUESTED and not r.events, "asked again: ALREADY_REQUESTED, no event")
    r = told(stub.AcceptFriend(pb.PairRequest(**{"from": ann, "to": bob}), timeout=5))
    check(r.found and len(r.events) == 1, "AcceptFriend: found, one event")
    r = stub.AcceptFriend(pb.PairRequest(**{"from": ann, "to": bob}), timeout=5)
    check(not r.found, "accepted again: not found")
    f = stub.Friends(pb.UserRequest(user_id=ids["ann"]), timeout=5)
    check(list(f.friends) == [ids["bob"]] and not f.incoming and not f.outgoing, "Friends: ids")
    m = told(stub.SendMessage(pb.SendMessageRequest(**{"from": ann, "to": bob, "client_id": "c1", "body": "hello"}), timeout=5))
    again = stub.SendMessage(pb.SendMessageRequest(**{"from": ann, "to": bob, "client_id": "c1", "body": "hello"}), timeout=5)
    check(m.is_new and not again.is_new and again.message.id == m.message.id, "SendMessage: once per client id")
    cyd = pb.Person(id=me["id"], username="cyd")
    check(code_of(lambda: stub.SendMessage(pb.SendMessageRequest(**{"from": ann, "to": cyd, "client_id": "c2", "body": "x"}),
                                           timeout=5)) == grpc.StatusCode.FAILED_PRECONDITION, "to a stranger: FAILED_PRECONDITION")
    page = stub.Messages(pb.MessagesRequest(user_id=ids["bob"], other_id=ids["ann"], limit=10), timeout=5)
    check([x.body for x in page.messages] == ["hello"], "Messages: the conversation")
    r = told(stub.MarkRead(pb.MarkReadRequest(reader=bob, **{"from": ann}, up_to=m.message.id), timeout=5))
    check(r.found and len(r.events) == 1 and r.events[0].user_id == ids["ann"], "MarkRead: ann hears of it")
    e = stub.Events(pb.EventsRequest(user_id=ids["bob"], after=0, limit=100), timeout=5)
    kinds = [json.loads(x)["kind"] for x in e.events_json]
    check(kinds == ["friend.request", "chat.message"] and e.head == 2, "Events: bob's log, with its head (%s)" % kinds)
    r = stub.AppendEvent(pb.AppendEventRequest(event_json=json.dumps({"id": 0, "kind": "library.changed", "createdAt": ""}).encode(),
                                               user_ids=[ids["ann"], ids["bob"]]), timeout=5)
    check(len(r.events) == 2, "AppendEvent: one event in each log")
    told(r)
    # Library's outbox messages: once each, however often delivered.
    change = pb.LibraryChangesRequest(changes=[pb.LibraryChange(outbox_id=987654, user="ann")])
    r = told(stub.ApplyLibraryChanges(change, timeout=5))
    again = stub.ApplyLibraryChanges(change, timeout=5)
    check(set(ids.values()) < {x.user_id for x in r.events} and len(r.events) == 3   # ann, bob and cyd
          and all(json.loads(x.event_json)["kind"] == "library.changed" for x in r.events)
          and len(again.events) == 0, "ApplyLibraryChanges: an event in each of the 3 logs (%d), and nothing for a redelivery (%d)"
          % (len(r.events), len(again.events)))
    check(code_of(lambda: stub.ApplyLibraryChanges(pb.LibraryChangesRequest(changes=[pb.LibraryChange(outbox_id=0)]), timeout=5))
          == grpc.StatusCode.INVALID_ARGUMENT, "ApplyLibraryChanges of no message: INVALID_ARGUMENT")
    r = told(stub.RemoveFriend(pb.PairRequest(**{"from": bob, "to": ann}), timeout=5))
    check(r.found, "RemoveFriend: found")


    def heard_now():
        return [(e.user_id, json.loads(e.event_json)["id"]) for n in list(notices) for e in n.events]

    deadline = time.time() + 5
    while len(heard_now()) < len(answered) and time.time() < deadline:
        time.sleep(0.01)
    feed.cancel()
    heard = heard_now()
    notices = [n for n in notices if n.reset or n.events or n.heads]   # heartbeats repeat a number
    seqs = [n.seq for n in notices]
    check(notices and notices[0].reset and notices[0].stream and not notices[0].events,
          "Subscribe: a new subscriber is told to read storage first (reset)")
    check(heard == answered and seqs == list(range(seqs[0], seqs[0] + len(seqs))),
          "Subscribe: every committed event once, in the order committed, numbered without gaps (%d events, %d notices)"
          % (len(heard), len(notices)))
    # Resuming from a notice replays the ones after it; another stream's position is reset.
    mid = notices[2]
    again = stub.Subscribe(pb.SubscribeRequest(stream=mid.stream, after=mid.seq), timeout=1)
    replay = []
    try:
        for n in again:
            replay.append(n)
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED, "a subscription ends at its deadline (%s)" % e.code().name)
    check([n.seq for n in replay] == seqs[3:] and not any(n.reset for n in replay),
          "Subscribe from notice %d: the %d after it again, no reset" % (mid.seq, len(seqs) - 3))
    other = stub.Subscribe(pb.SubscribeRequest(stream="another run", after=3), timeout=1)
    first = next(iter(other))
    other.cancel()
    check(first.reset, "Subscribe from another run's notice: reset")

    # Bad input: the codes, no crash.
    bad = [
        ("a person without an id", lambda: stub.Friends(pb.UserRequest(user_id=0), timeout=5), grpc.StatusCode.INVALID_ARGUMENT),
        ("a bad username", lambda: stub.RequestFriend(pb.PairRequest(**{"from": pb.Person(id=1, username="a\0b"), "to": bob}),
                                                      timeout=5), grpc.StatusCode.INVALID_ARGUMENT),
        ("an unknown user", lambda: stub.RequestFriend(pb.PairRequest(**{"from": pb.Person(id=999999, username="ghost"),
                                                                         "to": bob}), timeout=5), grpc.StatusCode.NOT_FOUND),
        ("one person twice", lambda: stub.RequestFriend(pb.PairRequest(**{"from": ann, "to": ann}), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("a message with NUL", lambda: stub.SendMessage(pb.SendMessageRequest(**{"from": ann, "to": bob, "client_id": "c4",
                                                                              "body": "a\0b"}), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("an empty message", lambda: stub.SendMessage(pb.SendMessageRequest(**{"from": ann, "to": bob, "client_id": "c3", "body": ""}),
                                                      timeout=5), grpc.StatusCode.INVALID_ARGUMENT),
        ("a page of 0", lambda: stub.Messages(pb.MessagesRequest(user_id=1, other_id=2, limit=0), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("an event that is not JSON", lambda: stub.AppendEvent(pb.AppendEventRequest(event_json=b"{", user_ids=[1]), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for what, call, want in bad:
        got = code_of(call)
        check(got == want, "%s: %s (%s)" % (what, want.name, got.name))
    raw = channel.unary_unary("/musit.social.v1.Social/SendMessage")
    codes = {code_of(lambda: raw(bytes([0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) * (i + 1), timeout=5)) for i in range(100)}
    check(codes <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL},
          "100 garbage messages: each an error status (%s)" % sorted(c.name for c in codes))
    big = code_of(lambda: raw(b"\x0a" + b"\x80" * 3 + b"\x01" + b"x" * (2 << 20), timeout=10))
    check(big in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED), "a 2 MiB message is refused unread (%s)" % big.name)
    check(social.proc.poll() is None, "the service is still up")
finally:
    channel.close()
    gateway.stop()
    social.stop()
finish("social contracts")
