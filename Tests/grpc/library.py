"""Library apart (`--role library`): the five processes of the split deployment (a gateway
with Accounts, Library, Social and Stats apart) on one data directory and media directory:

- a stock grpcio client generated from proto/ calls musit.library.v1.Library with the
  codes the contract names; health answers for "" and the service; garbage and a 2 MiB
  message get error statuses, and Library stays up;
- through the gateway: an upload stored by Library (201 with its tags), the same bytes
  again 409 naming the song, a file that does not play 422 with the reason, listing and
  search, the bytes streamed back by Range from the shared media directory, deletion by
  another user 403 and by the owner 204 with the files gone;
- kill -9 of Library while four clients upload, and a second gateway started meanwhile
  (its start sweeps abandoned uploads): uploads answer 503 while Library is down, and
  nothing else but 201 or 409 (the same bytes stored by a call whose answer the kill cut);
  restarted, uploads work within 2 s; at the end every acknowledged song is stored once
  with its file, no row lacks its file, no file lacks its row, and no partial upload or
  lock is left;
- kill -9 of Social while clients upload and delete: each stored or deleted song's
  library.changed travels from Library's outbox to Social, which appends it to every log:
  at the end a watcher's log holds exactly one library.changed per change (none lost while
  Social was down, none doubled by a redelivery after the kill).
"""
import glob
import hashlib
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import grpc
from grpc_health.v1 import health_pb2 as std_health, health_pb2_grpc as std_health_grpc

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "sync"))
from common import SERVICES, Client, Server, check, finish, register, start_split, variant, wait_for  # noqa: E402
import stubs  # noqa: E402
from stubs import code_of  # noqa: E402

stubs.generate()
pb, pb_grpc = stubs.library()
random.seed(int(os.environ.get("LIBRARY_SEED", "20261207")))


def make_mp3(directory, seconds=8):
    wav = os.path.join(directory, "tone.wav")
    path = os.path.join(directory, "tone.mp3")
    subprocess.run(["sox", "-n", "-r", "44100", "-c", "2", "-b", "16", wav, "synth", str(seconds), "sine", "440"], check=True)
    subprocess.run(["lame", "--quiet", "-b", "128", "--tt", "Tone", "--ta", "Sine", wav, path], check=True)
    with open(path, "rb") as f:
        return f.read()


def library_changes(port, token, cursor):
    """The library.changed events in a user's log after `cursor`, and the new cursor."""
    n = 0
    while True:
        st, page = Client(port, token).request("GET", "/api/v1/events?cursor=%d&timeout=0" % cursor)
        assert st == 200, (st, page)
        if not page["events"]:
            return n, cursor
        n += sum(1 for e in page["events"] if e["kind"] == "library.changed")
        cursor = page["cursor"]


def upload(port, token, data, timeout=30):
    return Client(port, token, timeout=timeout).request("POST", "/api/v1/songs", data, headers={"Content-Type": "audio/mpeg"})


names = SERVICES
services, ports, gateway = start_split()
data = gateway.data
library = services["library"]
channel = grpc.insecure_channel("127.0.0.1:%d" % ports["library"])
stub = pb_grpc.LibraryStub(channel)
gw = gateway.port
media = os.path.join(data, "media")
audio = tempfile.mkdtemp(prefix="musit-library-audio-")
tone = make_mp3(audio)
try:
    health = std_health_grpc.HealthStub(channel)
    for name in ["", "musit.library.v1.Library"]:
        r = health.Check(std_health.HealthCheckRequest(service=name), timeout=5)
        check(r.status == std_health.HealthCheckResponse.SERVING, "health of %r is SERVING" % name)

    # The contract, called directly.
    t = stub.GetTotals(pb.GetTotalsRequest(), timeout=5)
    check(t.songs == 0 and t.bytes == 0, "GetTotals: an empty library")
    check(not stub.GetSong(pb.GetSongRequest(id=42), timeout=5).found, "GetSong of no such song: not found")
    codes = [
        ("a list without a limit", lambda: stub.ListSongs(pb.ListSongsRequest(), timeout=5), grpc.StatusCode.INVALID_ARGUMENT),
        ("a query of 401 bytes", lambda: stub.ListSongs(pb.ListSongsRequest(limit=5, query="é" * 99 + "x" * 203), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("an upload named outside uploads/", lambda: stub.AddSong(pb.AddSongRequest(upload="../musit.sqlite", owner_id=1,
                                                                                   owner_name="ann"), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("an upload that is not there", lambda: stub.AddSong(pb.AddSongRequest(upload=str(uuid.uuid4()).upper() + ".part",
                                                                                owner_id=1, owner_name="ann"), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("an upload with no owner", lambda: stub.AddSong(pb.AddSongRequest(upload=str(uuid.uuid4()).upper() + ".part"), timeout=5),
         grpc.StatusCode.INVALID_ARGUMENT),
        ("a deletion of no song", lambda: stub.DeleteSong(pb.DeleteSongRequest(id=42, user_id=1, username="ann"), timeout=5),
         grpc.StatusCode.NOT_FOUND),
    ]
    for what, call, want in codes:
        got = code_of(call)
        check(got == want, "%s: %s (%s)" % (what, want.name, got.name))

    # Through the gateway.
    ann = register(gw, "ann")
    bob = register(gw, "bob")
    st, song = upload(gw, ann, tone)
    check(st == 201 and song["title"] == "Tone" and song["artist"] == "Sine" and song["owner"] == "ann"
          and abs(song["duration"] - 8.0) < 0.1 and song["sha256"] == hashlib.sha256(tone).hexdigest(),
          "an upload through the gateway: 201, stored by Library with its tags (%s)" % st)
    sid = song["id"] if st == 201 else 0
    st, again = upload(gw, bob, tone)
    check(st == 409 and ("song %d" % sid) in again.get("detail", ""), "the same bytes again: 409 naming song %d (%s)" % (sid, st))
    st, bad = upload(gw, bob, b"ID3" + os.urandom(20000))
    check(st == 422 and "playable" in bad.get("detail", ""), "a file that does not play: 422 with the reason (%s, %s)"
          % (st, bad.get("detail")))
    st, page = Client(gw, bob).request("GET", "/api/v1/songs?query=ton")
    check(st == 200 and [s["id"] for s in page["songs"]] == [sid], "listed and found by a query (%s)" % st)
    st, one = Client(gw, bob).request("GET", "/api/v1/songs/%d" % sid)
    check(st == 200 and one["title"] == "Tone", "one song (%s)" % st)
    st, body = Client(gw, bob).request("GET", "/api/v1/songs/%d/audio" % sid, headers={"Range": "bytes=100-4195"}, raw=True)
    check(st == 206 and body == tone[100:4196], "its bytes by Range from the shared media directory (%s, %d bytes)" % (st, len(body)))
    got = stub.GetSong(pb.GetSongRequest(id=sid), timeout=5)
    check(got.found and got.song.sha256 == song["sha256"] and got.song.format == "mp3" and len(got.song.hls_index_json) > 10,
          "GetSong: the row with its HLS index")
    listed = stub.ListSongs(pb.ListSongsRequest(limit=10), timeout=5).songs
    check([s.id for s in listed] == [sid] and not listed[0].hls_index_json and listed[0].sample_rate == 44100,
          "ListSongs: the rows without their index (a page of FLACs would pass the size limit), with the sample rate")
    check(stub.GetTotals(pb.GetTotalsRequest(), timeout=5).bytes == len(tone), "GetTotals: its bytes")
    st, _ = Client(gw, bob).request("DELETE", "/api/v1/songs/%d" % sid)
    check(st == 403, "bob deletes ann's song: 403 (%s)" % st)
    st, _ = Client(gw, ann).request("DELETE", "/api/v1/songs/%d" % sid)
    check(st == 204 and not os.path.exists(os.path.join(media, "%d.mp3" % sid)), "ann deletes it: 204, and its file is gone (%s)" % st)

    # Hostile input.
    raw = channel.unary_unary("/musit.library.v1.Library/AddSong")
    bad = {code_of(lambda: raw(bytes([0xff, 0x00, 0x13]) * (i + 1), timeout=5)) for i in range(50)}
    check(bad <= {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL}, "50 garbage messages: error statuses (%s)"
          % sorted(c.name for c in bad))
    big = code_of(lambda: stub.ListSongs(pb.ListSongsRequest(limit=5, query="x" * (2 << 20)), timeout=10))
    check(big in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE),
          "a 2 MiB message is refused (%s)" % big.name)
    check(library.proc.poll() is None, "Library is still up")

    # kill -9 of Library while four clients upload.
    people = ["up%d" % i for i in range(4)]
    tokens = {p: register(gw, p) for p in people}
    acked, lock, stop = [], threading.Lock(), threading.Event()
    refused = {}
    counter = iter(range(1, 1 << 30))

    def uploader(person):
        while not stop.is_set():
            with lock:
                n = next(counter)
            body = variant(tone, n, prefix=person)
            for attempt in range(40):
                try:
                    st, song = upload(gw, tokens[person], body, timeout=20)
                except Exception:  # noqa: BLE001
                    st, song = 0, None
                with lock:
                    refused[st] = refused.get(st, 0) + 1
                if st == 201:
                    with lock:
                        acked.append((song["id"], hashlib.sha256(body).hexdigest()))
                    break
                if st == 409:
                    # Stored by a call whose answer the kill cut: the same bytes are that song.
                    with lock:
                        acked.append((int(song["detail"].rsplit(" ", 1)[1]), hashlib.sha256(body).hexdigest()))
                    break
                time.sleep(0.05)

    workers = [threading.Thread(target=uploader, args=(p,)) for p in people]
    for w in workers:
        w.start()
    downs, backs, lists = [], [], []
    for round_ in range(4):
        time.sleep(random.uniform(0.3, 1.2))
        # Another gateway on the same media directory starts (and sweeps the uploads no live
        # process holds) while these are being written.
        other = Server(data=data, log_name="gateway2.log",
                       args=["--role", "gateway"] + sum((["--" + s, "127.0.0.1:%d" % p] for s, p in ports.items()), []))
        other.start()
        other.stop()
        library.kill9()
        took = wait_for(lambda: upload(gw, tokens[people[0]], b"x" * 10)[0] == 503, 5)
        downs.append(took if took is not None else 99)
        lists.append(Client(gw, tokens[people[1]]).request("GET", "/api/v1/songs")[0])
        time.sleep(random.uniform(0.1, 0.5))
        library.start()
        t0 = time.time()
        took = wait_for(lambda: upload(gw, tokens[people[0]], variant(tone, 10 ** 6 + round_, prefix="probe"))[0] == 201, 10)
        backs.append(took if took is not None else 99)
    time.sleep(0.5)
    stop.set()
    for w in workers:
        w.join(timeout=60)
    check(not any(w.is_alive() for w in workers), "the uploaders finished")
    check(set(refused) <= {201, 409, 503}, "uploads answered 201, 409 (stored by a call cut by the kill) or 503 only: %s"
          % refused)
    check(max(downs) < 2, "Library killed 4 times: uploads answer 503 within %.2f s" % max(downs))
    check(lists == [503] * 4, "while Library is down, the library's list answers 503, at once (%s)" % lists)
    check(max(backs) < 2, "restarted, uploads work again within %.2f s" % max(backs))
    check(len(acked) >= 8, "%d uploads acknowledged across the kills (answers: %s)" % (len(acked), refused))
    rows, cursor = {}, 0
    while cursor is not None:
        st, page = Client(gw, tokens[people[0]]).request("GET", "/api/v1/songs?limit=200&cursor=%d" % cursor)
        rows.update({s["id"]: s["sha256"] for s in page["songs"]})
        cursor = page.get("nextCursor")
    missing = [sid for sid, sha in acked if rows.get(sid) != sha]
    check(not missing, "every acknowledged song is stored (%d; missing %s)" % (len(acked), missing[:5]))
    shas = list(rows.values())
    check(len(shas) == len(set(shas)), "no bytes stored twice")
    files = {int(os.path.basename(p).split(".")[0]) for p in glob.glob(os.path.join(media, "*.mp3"))}
    check(files == set(rows), "rows and files match: %d rows, %d files (files without a row %s, rows without a file %s)"
          % (len(rows), len(files), sorted(files - set(rows))[:5], sorted(set(rows) - files)[:5]))
    # Social killed while songs are stored and deleted: library.changed exactly once each.
    watcher = register(gw, "watcher")
    _, cursor = library_changes(gw, watcher, 0)
    changes = {"stored": 0, "deleted": 0}
    stop.clear()

    def changer(person):
        while not stop.is_set():
            with lock:
                n = next(counter)
            body = variant(tone, n, prefix="s" + person)
            for attempt in range(100):
                st, song = upload(gw, tokens[person], body, timeout=20)
                if st in (201, 409):
                    break
                time.sleep(0.05)
            if st != 201:
                continue
            with lock:
                changes["stored"] += 1
            if n % 3 == 0:
                st, _ = Client(gw, tokens[person]).request("DELETE", "/api/v1/songs/%d" % song["id"])
                if st == 204:
                    with lock:
                        changes["deleted"] += 1

    social = services["social"]
    workers = [threading.Thread(target=changer, args=(p,)) for p in people]
    for w in workers:
        w.start()
    for _ in range(3):
        time.sleep(random.uniform(0.5, 1.5))
        social.kill9()
        time.sleep(random.uniform(0.2, 1.0))
        social.start()
    time.sleep(1)
    stop.set()
    for w in workers:
        w.join(timeout=60)
    expected = changes["stored"] + changes["deleted"]
    took = wait_for(lambda: library_changes(gw, watcher, cursor)[0] >= expected, 10)
    time.sleep(2.5)  # past the relay's check: a redelivery would show now
    got, _ = library_changes(gw, watcher, cursor)
    check(expected > 10 and got == expected,
          "Social killed 3 times under %d uploads and %d deletions: the watcher's log holds %d library.changed (%s)"
          % (changes["stored"], changes["deleted"], got, "arrived in %.2f s" % took if took is not None else "not all arrived"))

    covers = {int(os.path.basename(p).split(".")[0]) for p in glob.glob(os.path.join(media, "*.cover"))}
    check(covers <= set(rows), "no cover without its song (%s)" % sorted(covers - set(rows))[:5])
    left = glob.glob(os.path.join(media, "uploads", "*"))
    check(not left, "no partial upload or lock left (%s)" % [os.path.basename(p) for p in left[:5]])
finally:
    for s in [gateway] + [services[n] for n in reversed(names)]:
        s.stop()

finish("library apart")
