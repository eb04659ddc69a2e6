"""front_limits.py -- hostile and gone clients against planb's front door, over raw sockets.

Run by test_front_limits.sh as `python3 front_limits.py PORT REDIS_PORT MOCK_URL LOG` against a
planb whose config the script documents (one worker, http limits set small). Each check
prints "ok <name>" or raises, which fails the test. Raw sockets, because the point is what
well-behaved clients never send: oversized headers and bodies, a request that stops half
way, more connections than allowed, hang-ups while the answer is on its way, garbage.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

PORT, REDIS_PORT, MOCK_URL, LOG = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
KEYS = {"rpm": "sk-limit-rpm", "conc": "sk-limit-conc", "plain": "sk-limit-plain"}
MAX_CONNECTIONS = 20


def redis(*args):
    out = subprocess.run(["redis-cli", "-p", REDIS_PORT, *args], capture_output=True, text=True)
    return out.stdout.strip()


def mock_set(model, behaviour):
    req = urllib.request.Request(f"{MOCK_URL}/_mock/models/{model}",
                                 data=json.dumps(behaviour).encode(), method="POST")
    urllib.request.urlopen(req, timeout=5).read()


def connect():
    return socket.create_connection(("127.0.0.1", PORT), timeout=10)


def request_bytes(body, key="plain", headers=None, path="/v1/chat/completions"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    lines = [f"POST {path} HTTP/1.1", "Host: planb", "Content-Type: application/json",
             f"Content-Length: {len(data)}"]
    if key:
        lines.append(f"Authorization: Bearer {KEYS[key]}")
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def read_response(s, timeout=10):
    """(status, headers dict, body bytes) of one response, chunked or not; None on EOF."""
    s.settimeout(timeout)
    buf = b""
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
    while True:  # chunked
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


def chat(question, key="plain", headers=None, **extra):
    s = connect()
    s.sendall(request_bytes({"model": "default", "messages": [{"role": "user", "content": question}],
                             **extra}, key, headers))
    r = read_response(s)
    s.close()
    return r


def closed_by_server(s, within):
    """True when the server closes s within `within` seconds (b"" or a reset)."""
    s.settimeout(within)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def front_starts():
    with open(LOG) as f:
        return f.read().count("event=front_listen")


def worker_pid():
    return int(redis("ZRANGE", "planb:workers", "0", "0").rsplit(":", 1)[1])


def wait_until(cond, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(what)


def healthz():
    s = connect()
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: planb\r\n\r\n")
    r = read_response(s)
    s.close()
    return r and r[0] == 200


def main():
    # An answer first, so everything below starts from a working front.
    st, h, body = chat("limits warm up")
    check(st == 200 and json.loads(body)["choices"][0]["message"]["content"] == "echo: limits warm up",
          f"warm-up answer: {st} {body[:200]}")
    print("ok warm up")

    # Keys: none, a wrong one, then a right one.
    st, h, body = chat("no key", key=None)
    err = json.loads(body)["error"]
    check(st == 401 and err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error",
          f"missing key: {st} {body}")
    s = connect()
    s.sendall(request_bytes({"model": "default", "messages": [{"role": "user", "content": "x"}]},
                            None, {"Authorization": "Bearer sk-not-configured"}))
    st, h, body = read_response(s)
    check(st == 401, f"wrong key: {st}")
    print("ok keys")

    # Headers over http.max_header_bytes (2048): refused, and the front lives on.
    s = connect()
    s.sendall(request_bytes({"model": "default", "messages": []}, "plain", {"x-padding": "a" * 4096}))
    r = read_response(s)
    check(r is not None and r[0] in (400, 413, 431), f"oversized headers: {r and r[0]}")
    check(healthz(), "front down after oversized headers")
    print("ok header limit")

    # A body over http.max_body_bytes (4096): 413 before any job.
    before = int(redis("HGET", "planb:stats", "jobs") or 0)
    s = connect()
    big = {"model": "default", "messages": [{"role": "user", "content": "b" * 8000}]}
    s.sendall(request_bytes(big))
    r = read_response(s)
    check(r is not None and r[0] == 413, f"oversized body: {r and r[0]}")
    check(int(redis("HGET", "planb:stats", "jobs") or 0) == before, "an oversized body became a job")
    print("ok body limit")

    # A client that stops half way through its headers is dropped after client_timeout_ms (1 s).
    s = connect()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: planb\r\nContent-Le")
    t0 = time.time()
    check(closed_by_server(s, 5), "a stalled request was never dropped")
    check(time.time() - t0 < 4, f"stalled request dropped after {time.time() - t0:.1f} s")
    # ... and one that stops half way through its body.
    s = connect()
    s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: planb\r\nContent-Length: 100\r\n\r\n{\"mo")
    check(closed_by_server(s, 5), "a stalled body was never dropped")
    print("ok slow client")

    # Bad bodies: 400 in OpenAI's shape, never a job, never a crash.
    bad = [b"", b"{", b"[]", b"null", b"\x00\x01\x02", b'{"model":"default","messages":"hi"}',
           b'{"model":"default","messages":[{"role":"user","content":"x"}],"n":3}',
           b'{"model":7,"messages":[{"role":"user","content":"x"}]}',
           b'{"model":"default","stream":"yes","messages":[{"role":"user","content":"x"}]}',
           b'{"model":"default","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"x"}]}',
           b'{"model":"default","messages":[{"role":"user","content":"\xff\xfe"}]}',
           b'{"model":"default","messages":[{"role":"tool","content":"x"}]}',
           ("[" * 200).encode()]
    for b in bad:
        s = connect()
        s.sendall(request_bytes(b))
        st, h, body = read_response(s)
        err = json.loads(body).get("error", {})
        check(st == 400 and err.get("message") and err.get("type") == "invalid_request_error",
              f"bad body {b[:40]!r}: {st} {body[:200]}")
        check(h.get("x-should-retry") == "false", f"bad body {b[:40]!r} lacks x-should-retry: false")
    st, h, body = chat("bad header", headers={"x-planb-deadline-ms": "soon"})
    check(st == 400 and json.loads(body)["error"]["code"] == "bad_header", f"bad header: {st}")
    check(int(redis("HGET", "planb:stats", "jobs") or 0) == before, "a bad body became a job")
    # Garbage that is not HTTP at all, and requests cut mid-line: the front lives on.
    for junk in [b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),
                 b"GET / HTTP/9.9\r\n\r\n", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
                 b"POST /v1/chat/completions HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                 os.urandom(3000), b"\r\n" * 500]:
        s = connect()
        try:
            s.sendall(junk)
            read_response(s, timeout=3)
        except (ConnectionResetError, BrokenPipeError, socket.timeout):
            pass
        s.close()
    check(healthz(), "front down after garbage")
    check(front_starts() == 1, "the front process restarted (it crashed)")
    print("ok malformed requests")

    # Per-key limits: rpm 3 for the "rpm" key (the 4th request of the minute is a 429), one
    # request at a time for the "conc" key.
    codes = [chat(f"rpm {i} {time.time()}", key="rpm")[0] for i in range(4)]
    check(codes[:3] == [200, 200, 200] and codes[3] == 429, f"rpm codes {codes}")
    mock_set("primary", {"mode": "ok", "latency_ms": 1500})
    held = connect()
    held.sendall(request_bytes({"model": "default", "messages": [{"role": "user", "content": "conc held"}]},
                               "conc"))
    time.sleep(0.3)
    st, h, body = chat("conc second", key="conc")
    check(st == 429 and h.get("retry-after") and json.loads(body)["error"]["code"] == "concurrency_exceeded",
          f"concurrency: {st} {body[:200]}")
    st, h, body = read_response(held)
    check(st == 200, f"the held request: {st}")
    print("ok key limits")

    # http.max_connections (20): 20 connections waiting on slow answers, then a 21st gets no
    # answer until one of them is done; then it does.
    mock_set("primary", {"mode": "ok", "latency_ms": 2500})
    socks = []
    for i in range(MAX_CONNECTIONS):
        s = connect()
        s.sendall(request_bytes({"model": "default",
                                 "messages": [{"role": "user", "content": f"slow {i} {time.time()}"}]}))
        socks.append(s)
    time.sleep(0.5)
    extra = connect()  # the kernel accepts it into the backlog; the front does not take it
    extra.sendall(request_bytes({"model": "default", "messages": [{"role": "user", "content": "over the cap"}]}))
    extra.settimeout(1.0)
    try:
        got = extra.recv(100)
    except socket.timeout:
        got = None
    check(got is None, f"a connection over http.max_connections was served at once: {got!r}")
    mock_set("primary", {"mode": "ok"})
    for s in socks:
        st, h, body = read_response(s)
        check(st == 200, f"a capped connection's answer: {st}")
        s.close()
    st, h, body = read_response(extra, timeout=10)
    check(st == 200 and b"over the cap" in body, f"the waiting connection: {st} {body[:100]}")
    extra.close()
    print("ok max connections")

    # A client that hangs up while its job is still queued: the job is taken off the queue.
    # The worker is stopped; a BLMOVE it had parked in Redis still takes one job, so a
    # sacrificial job goes first and everything after it stays queued.
    wpid = worker_pid()
    os.kill(wpid, signal.SIGSTOP)
    try:
        redis("LPUSH", "planb:q:default", json.dumps({"id": "sacrifice", "messages": [
            {"role": "user", "content": "taken by the parked claim"}]}))
        try:
            wait_until(lambda: redis("LLEN", "planb:q:default") == "0", 1, "")
        except AssertionError:  # no claim was parked when the worker stopped
            redis("DEL", "planb:q:default")
        s = connect()
        s.sendall(request_bytes({"model": "default", "messages": [{"role": "user", "content": "left early"}]}))
        wait_until(lambda: redis("LLEN", "planb:q:default") == "1", 5, "the job never reached the queue")
        s.close()
        wait_until(lambda: redis("LLEN", "planb:q:default") == "0", 5, "a gone client's queued job stayed queued")
        wait_until(lambda: "event=front_cancel" in open(LOG).read(), 5, "no front_cancel logged")
        print("ok gone client cancels its queued job")

        # Nobody takes the job within deadline + wait_grace_ms: 503 not_taken, and it is off the queue.
        st, h, body = chat("never taken", headers={"x-planb-deadline-ms": "200"})
        check(st == 503 and json.loads(body)["error"]["code"] == "not_taken" and h.get("retry-after"),
              f"not taken: {st} {body[:200]}")
        check(redis("LLEN", "planb:q:default") == "0", "a not-taken job stayed queued")
        # A full queue (http.max_queue 25): 503 queue_full, nothing pushed.
        for i in range(25):
            redis("LPUSH", "planb:q:default", json.dumps({"id": f"filler-{i}", "messages": [
                {"role": "user", "content": f"filler {i}"}]}))
        st, h, body = chat("queue is full")
        check(st == 503 and json.loads(body)["error"]["code"] == "queue_full", f"queue full: {st} {body[:200]}")
        check(redis("LLEN", "planb:q:default") == "25", "a request was pushed onto a full queue")
        # No live worker: 503 no_workers.
        members = redis("ZRANGE", "planb:workers", "0", "-1", "WITHSCORES").split("\n")
        redis("DEL", "planb:workers")
        st, h, body = chat("no workers")
        check(st == 503 and json.loads(body)["error"]["code"] == "no_workers", f"no workers: {st} {body[:200]}")
        redis("ZADD", "planb:workers", members[1], members[0])
        print("ok queue full, no workers, not taken")
    finally:
        os.kill(wpid, signal.SIGCONT)
    wait_until(lambda: redis("LLEN", "planb:q:default") == "0", 10, "fillers were not run after SIGCONT")

    # A stream whose client hangs up mid-answer: the relay stops, the job is cancelled
    # (its `cancelled` result is stored), and the front serves on.
    mock_set("primary", {"mode": "ok", "chunk_interval_ms": 100})
    s = connect()
    s.sendall(request_bytes({"model": "default", "stream": True,
                             "messages": [{"role": "user", "content": "one two three four five six seven eight nine ten"}]}))
    s.settimeout(10)
    head = b""
    while b"data: " not in head:
        head += s.recv(4096)
    rid = [l.split(":", 1)[1].strip() for l in head.decode().split("\r\n") if l.lower().startswith("x-request-id")][0]
    s.close()
    wait_until(lambda: redis("EXISTS", f"planb:result:{rid}") == "1", 10, "the abandoned stream's job never finished")
    mock_set("primary", {"mode": "ok"})
    check(healthz() and chat("after the stream")[0] == 200, "front unwell after an abandoned stream")
    print("ok gone stream reader")

    # A stream reader that stops reading (a tiny receive window): once 1 MiB of events waits
    # unsent in the front, beyond what the kernel holds, the front cuts it off and serves on.
    for model in ("primary", "backup"):  # the primary's breaker may be open by now
        mock_set(model, {"mode": "ok", "reply": "slow reader " * 700000})  # 8.4 MB, 4096 events
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", PORT))
    s.sendall(request_bytes({"model": "default", "stream": True,
                             "messages": [{"role": "user", "content": "stop reading"}]}))
    s.settimeout(10)
    head = s.recv(64)
    check(head.startswith(b"HTTP/1.1 200"), f"slow reader's stream: {head!r}")
    wait_until(lambda: "event=front_slow_reader" in open(LOG).read(), 30,
               "a reader that stopped reading was never cut off")
    s.close()
    for model in ("primary", "backup"):
        mock_set(model, {"mode": "ok"})
    check(healthz() and chat("after the slow reader")[0] == 200, "front unwell after a slow reader")
    print("ok slow stream reader")

    # The subscriber connection killed again and again while results are being published:
    # each resubscription re-reads the waiting requests' result keys, so every answer comes
    # at once, not after the wait bound (deadline 8 s).
    import threading
    mock_set("primary", {"mode": "ok", "latency_ms": 600})
    answers = []

    def one(i):
        t0 = time.time()
        st, h, body = chat(f"through kills {i} {time.time()}")
        answers.append((st, time.time() - t0))

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    end = time.time() + 1.5
    while time.time() < end:
        redis("CLIENT", "KILL", "TYPE", "pubsub")
        time.sleep(0.05)
    for t in threads:
        t.join()
    check(len(answers) == 10 and all(st == 200 for st, _ in answers), f"answers through kills: {answers}")
    check(max(d for _, d in answers) < 5, f"an answer waited for its bound: {answers}")
    print("ok subscriber killed")

    # The stream reader's connection killed mid-stream: it reconnects and resumes from the last
    # entry it relayed, so the client gets the whole answer once.
    mock_set("primary", {"mode": "ok", "chunk_interval_ms": 80})
    words = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima"
    s = connect()
    s.sendall(request_bytes({"model": "default", "stream": True, "messages": [{"role": "user", "content": words}]}))
    time.sleep(0.4)
    for line in redis("CLIENT", "LIST").split("\n"):
        if "cmd=xread" in line:
            redis("CLIENT", "KILL", "ID", line.split("id=", 1)[1].split()[0])
    st, h, body = read_response(s, timeout=15)
    text = "".join(json.loads(l[6:])["choices"][0]["delta"].get("content") or ""
                   for l in body.decode().split("\n") if l.startswith("data: {") and '"choices":[{' in l)
    check(st == 200 and text == "echo: " + words and body.rstrip().endswith(b"data: [DONE]"),
          f"stream across a reader kill: {text!r}")
    mock_set("primary", {"mode": "ok"})
    print("ok stream reader killed")

    check(front_starts() == 1, "the front process restarted (it crashed)")
    print("PASS checks")


if __name__ == "__main__":
    main()
