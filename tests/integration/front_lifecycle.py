"""front_lifecycle.py -- a front-door request's life when its workers, Redis or client fail it.

Run by test_front_lifecycle.sh as `python3 front_lifecycle.py PORT REDIS_PORT MOCK_URL LOG
MASTER_PID [CHECK...]` against a planb with one worker, lease_ms 15000, http.wait_grace_ms
300 and three keys: "plain" (tenant t1), "conc" (concurrency 1) and "open" (no tenant, no
limit). Each check prints "ok <name>" or raises, which fails the test; naming checks runs
only those. Workers, the monitor and Redis are SIGSTOPped to put requests in the states a
review found unsafe: a push or a no-workers hold outstanding when the wait bound passes, a
push whose reply never comes, a job lost with its queue, a client gone while its job runs.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

PORT, REDIS_PORT, MOCK_URL, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
MASTER = int(sys.argv[5])
ONLY = sys.argv[6:]
KEYS = {"plain": "sk-life-plain", "conc": "sk-life-conc", "open": "sk-life-open"}
LEASE_S = 15.0


def redis(*args):
    out = subprocess.run(["redis-cli", "-p", REDIS_PORT, *args], capture_output=True, text=True,
                         timeout=10)
    return out.stdout.strip()


def redis_pid():
    return int(redis("INFO", "server").split("process_id:", 1)[1].split()[0])


def mock_set(model, behaviour):
    req = urllib.request.Request(f"{MOCK_URL}/_mock/models/{model}",
                                 data=json.dumps(behaviour).encode(), method="POST")
    urllib.request.urlopen(req, timeout=5).read()


def mock_requests(model):
    stats = json.loads(urllib.request.urlopen(f"{MOCK_URL}/_mock/stats", timeout=5).read())
    return stats["models"].get(model, {}).get("requests", 0), stats["pending"]


def connect():
    return socket.create_connection(("127.0.0.1", PORT), timeout=10)


def request_bytes(body, key="plain", headers=None):
    data = json.dumps(body).encode()
    lines = ["POST /v1/chat/completions HTTP/1.1", "Host: planb", "Content-Type: application/json",
             f"Content-Length: {len(data)}", f"Authorization: Bearer {KEYS[key]}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def ask(question, **extra):
    return {"model": "default", "messages": [{"role": "user", "content": question}], **extra}


def read_response(s, timeout=15):
    """(status, headers, body) of one response, chunked or not; None when the server closed
    the connection (or reset it) without one."""
    s.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            d = s.recv(65536)
            if not d:
                return None
            buf += d
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        if "content-length" in headers:
            n = int(headers["content-length"])
            while len(rest) < n:
                d = s.recv(65536)
                if not d:
                    break
                rest += d
            return status, headers, rest[:n]
        body = b""
        while True:
            while b"\r\n" not in rest:
                d = s.recv(65536)
                if not d:
                    return status, headers, body
                rest += d
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line, 16)
            while len(rest) < size + 2:
                d = s.recv(65536)
                if not d:
                    return status, headers, body + rest
                rest += d
            body, rest = body + rest[:size], rest[size + 2:]
            if size == 0:
                return status, headers, body
    except ConnectionResetError:
        return None


def chat(question, key="plain", headers=None, timeout=15, **extra):
    s = connect()
    s.sendall(request_bytes(ask(question, **extra), key, headers))
    r = read_response(s, timeout)
    s.close()
    return r


def error_code(r):
    try:
        return json.loads(r[2])["error"]["code"]
    except (TypeError, ValueError, KeyError):
        return None


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def wait_until(cond, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(what)


def log_text():
    with open(LOG) as f:
        return f.read()


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(p) for p in f.read().split()]


def sockets(pid):
    out = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:"):
            out.add(link)
    return out


def front_pid():
    """The child sharing the master's listening socket (workers and the monitor close it)."""
    mine = sockets(MASTER)
    fronts = [c for c in children(MASTER) if sockets(c) & mine]
    check(len(fronts) == 1, f"front process not found among {children(MASTER)}")
    return fronts[0]


def worker_pids():
    return [int(m.rsplit(":", 1)[1]) for m in redis("ZRANGE", "planb:workers", "0", "-1").split()]


def redis_now_ms():
    s, us = redis("TIME").split()
    return int(s) * 1000 + int(us) // 1000


def fresh_workers():
    return int(redis("ZCOUNT", "planb:workers", str(redis_now_ms() - int(LEASE_S * 1000)), "+inf"))


class Stopped:
    """SIGSTOPs every child of the master but the front (workers and monitor) for a with-block.
    A BLMOVE the worker had parked still takes one job: a sacrificial job goes first, so what
    the check pushes stays queued."""

    def __enter__(self):
        front = front_pid()
        self.pids = [c for c in children(MASTER) if c != front]
        for p in self.pids:
            os.kill(p, signal.SIGSTOP)
        redis("LPUSH", "planb:q:default", json.dumps({"id": f"sacrifice-{time.time()}", "messages": [
            {"role": "user", "content": "taken by the parked claim"}]}))
        try:
            wait_until(lambda: redis("LLEN", "planb:q:default") == "0", 0.5, "")
        except AssertionError:
            redis("DEL", "planb:q:default")
        return self

    def __exit__(self, *exc):
        for p in self.pids:
            os.kill(p, signal.SIGCONT)
        wait_until(lambda: fresh_workers() > 0, 10, "no worker beat after SIGCONT")
        wait_until(lambda: redis("LLEN", "planb:q:default") == "0", 10, "the queue did not drain")


class RedisStopped:
    def __enter__(self):
        self.pid = redis_pid()
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)
        wait_until(lambda: redis("PING") == "PONG", 10, "redis did not come back")
        wait_until(healthz, 15, "the front did not reconnect to redis")


def healthz():
    try:
        s = connect()
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: planb\r\n\r\n")
        r = read_response(s, 3)
        s.close()
        return r is not None and r[0] == 200
    except OSError:
        return False


def parallel(n, fn):
    out = [None] * n

    def run(i):
        try:
            out[i] = fn(i)
        except Exception as e:  # reported as the answer, so the check names it
            out[i] = e
    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


# ------------------------------------------------------------------ checks

def check_tenant_header():
    """A key without a tenant cannot pick one with x-planb-tenant (http.tenant_header is off
    by default when keys are configured); a key's own tenant still wins over the header."""
    r = chat("tenant pick", key="open", headers={"x-planb-tenant": "t1"})
    check(r and r[0] == 400 and error_code(r) == "bad_header", f"x-planb-tenant on open key: {r}")
    r = chat("tenant pick", key="plain", headers={"x-planb-tenant": "other"})
    check(r and r[0] == 200, f"x-planb-tenant on a key with its tenant: {r and r[0]}")
    r = chat("no tenant asked", key="open")
    check(r and r[0] == 200, f"open key: {r and r[0]}")


def check_gone_client_cancels_its_job():
    """A client of a concurrency-1 key that hangs up while its job runs has its job cancelled
    (cancel.lua): the upstream call is closed at once, the job's one result is `cancelled`,
    and the key's slot is given back for the next request."""
    mock_set("primary", {"mode": "ok", "latency_ms": 1500})
    before, _ = mock_requests("primary")
    s = connect()
    s.sendall(request_bytes(ask(f"slot held {time.time()}"), "conc", {"x-planb-cache": "skip"}))
    wait_until(lambda: mock_requests("primary")[0] > before, 5, "the first job never ran")
    s.close()
    wait_until(lambda: mock_requests("primary")[1] == 0, 2, "the gone client's call was not closed")
    wait_until(lambda: "job=running" in log_text(), 2, "no front_cancel of the running job logged")
    got = []

    def retry():
        r = chat(f"slot second {time.time()}", key="conc", headers={"x-planb-cache": "skip"})
        got.append(r and r[0])
        return r and r[0] == 200
    wait_until(retry, 10, f"the key's slot was never given back: {got}")
    mock_set("primary", {"mode": "ok"})
    after, _ = mock_requests("primary")
    check(after - before == 2, f"{after - before} upstream calls for two jobs")
    check("status=cancelled" in log_text(), "the gone client's job did not finish cancelled")


def check_pipelined_hangup():
    """A client that sent a byte past its request (a pipelined request) and then hangs up is
    still noticed: its queued job is taken off the queue."""
    with Stopped():
        s = connect()
        s.sendall(request_bytes(ask("pipelined then gone"), "plain",
                                {"x-planb-deadline-ms": "20000"}))
        wait_until(lambda: redis("LLEN", "planb:q:default") == "1", 5, "the job never got queued")
        s.sendall(b"G")  # after evhttp read the request: it stays in the socket, unread
        time.sleep(0.2)  # the watch sees the byte (nothing to poll for from here)
        s.close()
        wait_until(lambda: redis("LLEN", "planb:q:default") == "0", 2,
                   "the job of a client that hung up after a pipelined byte stayed queued")


def check_lost_job():
    """A job lost with its queue (DEL) before any worker took it is answered with a clear
    503 job_lost at the wait bound, not a 504 that promises it may still finish."""
    with Stopped():
        s = connect()
        s.sendall(request_bytes(ask("lost with the queue"), "plain", {"x-planb-deadline-ms": "200"}))
        wait_until(lambda: redis("LLEN", "planb:q:default") == "1", 5, "the job never got queued")
        redis("DEL", "planb:q:default")
        r = read_response(s)
        s.close()
        check(r and r[0] == 503 and error_code(r) == "job_lost" and r[1].get("retry-after"),
              f"a lost job: {r and r[0]} {r and r[2][:200]}")


def check_no_workers_hold():
    """Workers and monitor stopped and no live worker in planb:workers (as when their beats
    age past the lease; deleted here, so the check need not wait out a lease the Redis check
    needs long), requests whose wait bound (100 + 300 ms) ends inside the 2-s no-workers
    hold: each is a 503 no_workers (never queued, never a 504), and the front lives (it used
    to free the request under the hold's timer). The heartbeat puts the worker back."""
    front = front_pid()
    with Stopped():
        redis("DEL", "planb:workers")
        t0 = time.time()
        answers = parallel(6, lambda i: chat(f"held {i} {time.time()}",
                                             headers={"x-planb-deadline-ms": "100"}))
        took = time.time() - t0
        check(all(isinstance(a, tuple) and a[0] == 503 and error_code(a) == "no_workers"
                  for a in answers), f"requests held for workers: {answers}")
        check(took < 2.5, f"the held requests took {took:.1f} s")
        check(redis("LLEN", "planb:q:default") == "0", "a refused request's job got queued")
    check(front_pid() == front, "the front process died")


def check_stream_restart():
    """A worker killed mid-stream: the job re-runs and its stream starts again (a second start,
    not a continuation). The client's stream ends with an error event instead of the text
    again."""
    mock_set("primary", {"mode": "ok", "chunk_interval_ms": 150})
    words = "one two three four five six seven eight nine ten"
    s = connect()
    s.sendall(request_bytes(ask(words, stream=True), "plain", {"x-planb-cache": "skip"}))
    s.settimeout(15)
    buf = b""
    while buf.count(b'"content":"') < 3:  # the role chunk has none; "echo:", "one"
        d = s.recv(65536)
        check(d, f"the stream ended early: {buf[-300:]!r}")
        buf += d
    os.kill(worker_pids()[0], signal.SIGKILL)
    while b"data: [DONE]" not in buf:
        d = s.recv(65536)
        if not d:
            break
        buf += d
    s.close()
    mock_set("primary", {"mode": "ok"})
    body = buf.split(b"\r\n\r\n", 1)[1].decode(errors="replace")
    events = [l[6:] for l in body.split("\n") if l.startswith("data: {")]
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                   for e in events if '"choices":[{' in e)
    errors = [json.loads(e)["error"] for e in events if e.startswith('{"error"')]
    check(("echo: " + words).startswith(text), f"the client got text twice: {text!r}")
    check(len(errors) == 1 and errors[0]["code"] == "stream_restarted",
          f"no error event ended the restarted stream: {errors} {body[-300:]!r}")
    check("data: [DONE]" in body, "the stream did not end with [DONE]")
    wait_until(lambda: fresh_workers() > 0, 10, "the worker was not respawned")


def check_redis_stopped_stream():
    """Redis stopped under a stream request whose wait bound passes with its push unanswered:
    the push is bounded (redis.timeout_ms), the request waits out its bound and is a 504 (the
    job may still land when Redis wakes), and the front lives (it used to free the request
    twice: push reply and timeout LREM)."""
    front = front_pid()
    with RedisStopped():
        t0 = time.time()
        r = chat("redis asleep", stream=True, headers={"x-planb-deadline-ms": "100"}, timeout=12)
        took = time.time() - t0
        check(r and r[0] == 504 and error_code(r) == "timeout",
              f"a stream request with Redis stopped: {r and r[0]} {r and r[2][:200]} after {took:.1f} s")
        check(took < 4, f"answered after {took:.1f} s")
    check(front_pid() == front, "the front process died")


def check_push_unknown_then_ran():
    """Redis stopped 9 s under four pushes (past its 6-s ping timeout, which drops the
    connection; within the lease, so the worker still counts): their replies never come, but
    the pushes land when Redis wakes and the jobs run. Each request keeps waiting on its id and gets its answer: never a 503 for a job that
    ran."""
    before, _ = mock_requests("primary")
    answers = [None] * 4
    with RedisStopped():
        def one(i):
            answers[i] = chat(f"pushed blind {i} {time.time()}", timeout=30,
                              headers={"x-planb-deadline-ms": "20000", "x-planb-cache": "skip"})
        threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        time.sleep(9)  # the fault's length, not a wait for a condition
    for t in threads:
        t.join()
    after, _ = mock_requests("primary")
    ran = after - before
    statuses = [a and a[0] for a in answers]
    check(ran == 4, f"{ran} of the 4 jobs ran upstream (answers {statuses})")
    check(statuses == [200] * 4, f"jobs that ran were answered {statuses}: "
          f"{[a and a[2][:120] for a in answers]}")


CHECKS = [("tenant header", check_tenant_header),
          ("gone client cancels its job", check_gone_client_cancels_its_job),
          ("pipelined hangup", check_pipelined_hangup),
          ("lost job", check_lost_job),
          ("no workers hold", check_no_workers_hold),
          ("stream restart", check_stream_restart),
          ("redis stopped stream", check_redis_stopped_stream),
          ("push unknown then ran", check_push_unknown_then_ran)]


def main():
    r = chat("lifecycle warm up")
    check(r and r[0] == 200, f"warm-up answer: {r}")
    for name, fn in CHECKS:
        if ONLY and name.replace(" ", "_") not in ONLY:
            continue
        fn()
        print(f"ok {name}", flush=True)
    check(log_text().count("event=front_listen") == 1, "the front process restarted (it crashed)")
    print("PASS checks")


if __name__ == "__main__":
    main()
