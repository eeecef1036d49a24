"""Accounts apart (`--role accounts`), behind a gateway with Social and Stats apart too, on
one data directory:

- a stock grpcio client generated from proto/ calls every method of
  musit.accounts.v1.Accounts with the codes the contract names; health answers for "" and
  the service; garbage and a 2 MiB message get error statuses, the process stays up;
- through the gateway: register, sign in, refresh (reuse signs the family out), profile,
  search, and a throttled login answered 429 with the service's Retry-After;
- kill -9 of Accounts: sign-in answers 503 with Retry-After within 2 s while a signed-in
  user's routes (me, chat, the library) keep working; restarted, sign-in works within 2 s;
- an account deleted through the gateway: its token is refused at once;
- no password appears in any process's log.
"""
import os
import sys
import time
import urllib.error
import urllib.request

import grpc
from grpc_health.v1 import health_pb2 as std_health, health_pb2_grpc as std_health_grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import Client, Server, befriend, check, finish, free_port, register, wait_for  # noqa: E402
import stubs  # noqa: E402
from stubs import code_of  # noqa: E402

stubs.generate()
pb, pb_grpc = stubs.accounts()
SECRET = "correct horse"


ports = {"accounts": free_port(), "social": free_port(), "stats": free_port()}
accounts = Server(args=["--role", "accounts", "--grpc-port", str(ports["accounts"])], log_name="accounts.log")
data = accounts.data
others = [Server(data=data, args=["--role", s, "--grpc-port", str(ports[s])], log_name=s + ".log") for s in ("social", "stats")]
gateway = Server(data=data, log_name="gateway.log",
                 args=["--role", "gateway"] + sum((["--" + s, "127.0.0.1:%d" % p] for s, p in ports.items()), []))
for s in [accounts] + others + [gateway]:
    s.start()
channel = grpc.insecure_channel("127.0.0.1:%d" % ports["accounts"])
stub = pb_grpc.AccountsStub(channel)
gw = gateway.port
try:
    health = std_health_grpc.HealthStub(channel)
    for name in ["", "musit.accounts.v1.Accounts"]:
        r = health.Check(std_health.HealthCheckRequest(service=name), timeout=5)
        check(r.status == std_health.HealthCheckResponse.SERVING, "health of %r is SERVING" % name)

    # The contract, called directly.
    s = stub.Register(pb.RegisterRequest(username="ann", password=SECRET, display_name="Ann A."), timeout=5)
    check(s.access_token and s.refresh_token and s.user.username == "ann" and s.user.role == "admin" and s.expires_in > 0,
          "Register: a session; the first user is admin")
    status, me = Client(gw, s.access_token).request("GET", "/api/v1/me")
    check(status == 200 and me["displayName"] == "Ann A.", "a token Accounts signed is taken by the gateway (%s)" % status)
    codes = [
        ("a name taken", lambda: stub.Register(pb.RegisterRequest(username="ANN", password=SECRET), timeout=5),
         grpc.StatusCode.ALREADY_EXISTS),
        ("a bad name", lambda: stub.Register(pb.RegisterRequest(username="a b", password=SECRET), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("a short password", lambda: stub.Register(pb.RegisterRequest(username="bea", password="x"), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("a wrong password", lambda: stub.Login(pb.LoginRequest(username="ann", password="wrong horse", client_address="10.0.0.1"),
                                                timeout=5), grpc.StatusCode.UNAUTHENTICATED),
        ("an unknown refresh token", lambda: stub.Refresh(pb.RefreshRequest(refresh_token="nope"), timeout=5),
         grpc.StatusCode.UNAUTHENTICATED),
        ("an empty refresh token", lambda: stub.Refresh(pb.RefreshRequest(), timeout=5), grpc.StatusCode.INVALID_ARGUMENT),
        ("a deletion with a wrong password", lambda: stub.DeleteAccount(pb.DeleteAccountRequest(user_id=s.user.id, password="nope",
                                                                                                 client_address="10.0.0.2"), timeout=5),
         grpc.StatusCode.PERMISSION_DENIED),
        ("a profile of no one", lambda: stub.UpdateProfile(pb.UpdateProfileRequest(user_id=0, bio="x"), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("a search without a limit", lambda: stub.SearchUsers(pb.SearchUsersRequest(query="a"), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for what, call, want in codes:
        got = code_of(call)
        check(got == want, "%s: %s (%s)" % (what, want.name, got.name))
    login = stub.Login(pb.LoginRequest(username="Ann", password=SECRET, client_address="10.0.0.3"), timeout=5)
    check(login.user.id == s.user.id, "Login: any case of the name")
    rotated = stub.Refresh(pb.RefreshRequest(refresh_token=login.refresh_token), timeout=5)
    check(rotated.refresh_token != login.refresh_token, "Refresh: a new refresh token")
    check(code_of(lambda: stub.Refresh(pb.RefreshRequest(refresh_token=login.refresh_token), timeout=5))
          == grpc.StatusCode.UNAUTHENTICATED, "Refresh with a used token: UNAUTHENTICATED")
    check(code_of(lambda: stub.Refresh(pb.RefreshRequest(refresh_token=rotated.refresh_token), timeout=5))
          == grpc.StatusCode.UNAUTHENTICATED, "and its family is signed out")
    stub.Logout(pb.RefreshRequest(refresh_token=s.refresh_token), timeout=5)
    stub.Logout(pb.RefreshRequest(refresh_token=s.refresh_token), timeout=5)
    check(code_of(lambda: stub.Refresh(pb.RefreshRequest(refresh_token=s.refresh_token), timeout=5))
          == grpc.StatusCode.UNAUTHENTICATED, "Logout (twice): the token is revoked")
    bob = stub.Register(pb.RegisterRequest(username="bob", password=SECRET), timeout=5)
    found = stub.FindUser(pb.FindUserRequest(username="BOB"), timeout=5)
    missing = stub.FindUser(pb.FindUserRequest(username="nobody"), timeout=5)
    odd = stub.FindUser(pb.FindUserRequest(username="no\0one"), timeout=5)
    check(found.found and found.user.id == bob.user.id and not missing.found and not odd.found, "FindUser: found, or not")
    got = stub.GetUsers(pb.GetUsersRequest(ids=[s.user.id, bob.user.id, 999999]), timeout=5)
    check(sorted(u.username for u in got.users) == ["ann", "bob"], "GetUsers: those that exist")
    check([u.username for u in stub.SearchUsers(pb.SearchUsersRequest(query="b", limit=10), timeout=5).users] == ["bob"],
          "SearchUsers: by name")
    check(stub.CountUsers(pb.CountUsersRequest(), timeout=5).count == 2, "CountUsers: 2")
    p = stub.UpdateProfile(pb.UpdateProfileRequest(user_id=bob.user.id, bio="hello"), timeout=5)
    check(p.found and p.user.bio == "hello" and p.user.display_name == "bob", "UpdateProfile: what is given, and only that")
    gone = stub.UpdateProfile(pb.UpdateProfileRequest(user_id=999999, bio="x"), timeout=5)
    check(not gone.found, "UpdateProfile of no such user: not found")

    # Hostile input.
    raw = channel.unary_unary("/musit.accounts.v1.Accounts/Login")
    bad = {code_of(lambda: raw(bytes([0xff, 0x00, 0x13]) * (i + 1), timeout=5)) for i in range(50)}
    check(bad <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL}, "50 garbage messages: error statuses (%s)"
          % sorted(c.name for c in bad))
    big = code_of(lambda: stub.Login(pb.LoginRequest(username="ann", password="x" * (2 << 20)), timeout=10))
    check(big in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE),
          "a 2 MiB message is refused (%s)" % big.name)
    check(accounts.proc.poll() is None, "Accounts is still up")

    # Through the gateway: a throttled login is 429 with the service's wait.
    statuses = []
    for i in range(12):
        st, _ = Client(gw).request("POST", "/api/v1/auth/login", {"username": "bob", "password": "wrong %d" % i})
        statuses.append(st)
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1/auth/login" % gw, method="POST",
                                 data=b'{"username": "bob", "password": "wrong once more"}',
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5)
        after = None
    except urllib.error.HTTPError as e:
        after = (e.code, e.headers.get("Retry-After"))
    check(401 in statuses and 429 in statuses and after and after[0] == 429 and int(after[1]) > 1,
          "failed logins through the gateway: 401, then 429 with Accounts' Retry-After (%s)" % (after,))

    # kill -9 of Accounts: who is signed in keeps working; sign-in is 503 until it is back.
    a = register(gw, "cyd")
    d = register(gw, "dee")
    befriend(gw, a, "dee", d, "cyd")
    c = Client(gw, a)
    check(c.request("GET", "/api/v1/me")[0] == 200, "cyd is signed in")
    accounts.kill9()
    took = wait_for(lambda: Client(gw).request("POST", "/api/v1/auth/login", {"username": "cyd", "password": SECRET})[0] == 503, 5)
    check(took is not None and took < 2, "Accounts killed: sign-in answers 503 in %.2f s" % (took or 99))
    req = urllib.request.Request("http://127.0.0.1:%d/api/v1/auth/login" % gw, method="POST",
                                 data=b'{"username": "cyd", "password": "correct horse"}', headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=5)
        down = None
    except urllib.error.HTTPError as e:
        down = (e.code, e.headers.get("Retry-After"), e.headers.get("Content-Type"))
    check(down and down[0] == 503 and down[1] and down[2] == "application/problem+json",
          "503 problem+json with Retry-After (%s)" % (down,))
    codes = (c.request("GET", "/api/v1/me")[0],
             c.request("POST", "/api/v1/messages", {"to": "dee", "body": "still here", "clientId": "k1"})[0],
             c.request("GET", "/api/v1/songs")[0])
    check(codes == (200, 201, 200), "while Accounts is down, cyd's me, chat and library work (%s)" % (codes,))
    accounts.start()
    t0 = time.time()
    took = wait_for(lambda: Client(gw).request("POST", "/api/v1/auth/login", {"username": "cyd", "password": SECRET})[0] == 200, 5)
    check(took is not None and took < 2, "Accounts restarted: sign-in works again in %.2f s" % (took or 99))

    # Deleted through the gateway: the token stops at once.
    st, _ = Client(gw, d).request("DELETE", "/api/v1/me", {"password": SECRET})
    after = Client(gw, d).request("GET", "/api/v1/me")[0]
    check(st == 204 and after == 401, "dee deleted (%s): the token is refused at once (%s)" % (st, after))
    st, friends = Client(gw, a).request("GET", "/api/v1/friends")
    check(st == 200 and friends.get("friends") == [], "and cyd's friends list no longer has dee (%s, %s)" % (st, friends))
finally:
    for s in [gateway] + others + [accounts]:
        s.stop()

logs = "".join(open(os.path.join(data, n), errors="replace").read()
               for n in ("accounts.log", "gateway.log", "social.log", "stats.log"))
check(SECRET not in logs and "wrong horse" not in logs, "no password in any log line (%d bytes of logs)" % len(logs))
finish("accounts apart")
