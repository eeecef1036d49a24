"""PostgreSQL stopped for 10 s under load (MUSIT_DATABASE_URL, MUSIT_TEST_POSTGRES_CTL): the
server stays up and answers 503 problems meanwhile, within the store's timeout, recovers
when the database is back, and loses no acknowledged message."""
import os
import subprocess
import threading
import time

from common import Client, Server, befriend, check, finish, register



def main():
    ctl = os.environ["MUSIT_TEST_POSTGRES_CTL"]
    server = Server().start()
    try:
        a = register(server.port, "outa")
        b = register(server.port, "outb")
        befriend(server.port, a, "outb", b, "outa")
        acked, statuses, problems, slowest = [], {}, 0, 0.0
        stop = threading.Event()

        def send():
            nonlocal problems, slowest
            c = Client(server.port, a, timeout=30)
            i = 0
            while not stop.is_set():
                i += 1
                started = time.monotonic()
                try:
                    s, body = c.request("POST", "/api/v1/messages", {"to": "outb", "clientId": "o-%d" % i, "body": "m %d" % i})
                except Exception as e:  # noqa: BLE001 - a transport error is no acknowledgement
                    s, body = type(e).__name__, None
                slowest = max(slowest, time.monotonic() - started)
                statuses[s] = statuses.get(s, 0) + 1
                if s in (200, 201):
                    acked.append("o-%d" % i)
                elif s == 503 and isinstance(body, dict) and body.get("status") == 503:
                    problems += 1
                time.sleep(0.02)

        t = threading.Thread(target=send)
        t.start()
        time.sleep(2)
        before = len(acked)
        subprocess.run(ctl + " -m fast stop", shell=True, check=True, stdout=subprocess.DEVNULL)
        time.sleep(10)
        during = len(acked) - before
        subprocess.run(ctl + " start", shell=True, check=True, stdout=subprocess.DEVNULL)
        back = time.time()
        while time.time() - back < 30 and len(acked) == before + during:
            time.sleep(0.1)
        recovered = time.time() - back
        time.sleep(3)
        stop.set()
        t.join(60)
        check(server.proc.poll() is None, "the server is still running")
        check(problems > 0, "while the database was down the answers were 503 problems (%d; all answers: %s)" % (problems, statuses))
        check(len(acked) > before + during, "sending works again %.1f s after the database is back" % recovered)
        # A request waits for the database 5 s at most (the store's operation timeout),
        # even when what it waits on does not heed cancellation.
        check(slowest < 8, "no request waited more than 8 s (slowest %.1f s)" % slowest)
        # Every acknowledged message is stored, once, and was delivered to b.
        c = Client(server.port, b)
        got, cursor = [], 0
        while True:
            s, page = c.request("GET", "/api/v1/events?cursor=%d&timeout=0" % cursor)
            if not page["events"]:
                break
            got += [e["message"]["clientId"] for e in page["events"] if e.get("message")]
            cursor = page["cursor"]
        missing = set(acked) - set(got)
        twice = len(got) - len(set(got))
        check(not missing and twice == 0, "%d acknowledged messages: %d missing, %d repeated" % (len(acked), len(missing), twice))
    finally:
        server.stop()
    finish("database outage")


if __name__ == "__main__":
    main()
