"""front_soak.py -- hostile and unlucky clients against the front door for SOAK_SECONDS.

Run by test_front_soak.sh as `python3 front_soak.py PORT REDIS_PORT PLANB_LOG REDIS_PID` against
a planb with 2 workers and its front door (the config is the script's). For the whole run, at
once: honest clients (plain and streamed, short and no deadlines), clients that hang up at a
random moment, clients that pipeline a byte after their request, clients that send junk on
their stream's socket, slowloris trickles, and chaos: workers and Redis SIGSTOPped for 1-3 s
and continued. Then it checks what the front door promises:
  - the front never died (one front_listen, no worker_died in the log);
  - the front's RSS stayed under RSS_LIMIT_MIB (sampled every second; 64, or 640 for an ASan
    build, whose quarantine alone holds up to 256 MiB of freed memory);
  - every answer that arrived carried exactly its job's text once (the echo or the degraded
    reply; a stream's deltas joined, one [DONE], nothing after it);
  - every job that ran upstream (its result in Redis names a model) was answered, or told 504,
    or its client had gone: never 503, never a silent hang-up.
Prints figures and "ok <check>" lines; an AssertionError fails the test.
"""
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

PORT, REDIS_PORT, LOG, REDIS_PID = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
SECONDS = int(os.environ.get("SOAK_SECONDS", "600"))
RSS_LIMIT_MIB = int(os.environ.get("RSS_LIMIT_MIB", "64"))
DEGRADED = "Sorry, try later."
KEY = "sk-soak-key"
stop = threading.Event()
lock = threading.Lock()
outcomes = {}  # question -> (kind, what, detail)
counts = {}


def tally(name):
    with lock:
        counts[name] = counts.get(name, 0) + 1


def record(question, kind, what, detail=""):
    with lock:
        outcomes[question] = (kind, what, detail)
    tally(f"{kind}:{what}")


def redis(*args):
    out = subprocess.run(["redis-cli", "-p", REDIS_PORT, *args], capture_output=True, text=True,
                         timeout=30)
    return out.stdout.strip()


def request_bytes(question, stream, deadline):
    body = json.dumps({"model": "default", "stream": stream,
                       "messages": [{"role": "user", "content": question}]}).encode()
    lines = ["POST /v1/chat/completions HTTP/1.1", "Host: planb",
             "Content-Type: application/json", f"Content-Length: {len(body)}",
             f"Authorization: Bearer {KEY}"]
    if deadline:
        lines.append(f"x-planb-deadline-ms: {deadline}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Eof(Exception):
    pass


class Reader:
    """Reads one HTTP response off a socket, keeping what follows it."""

    def __init__(self, s):
        self.s, self.buf = s, b""

    def more(self):
        d = self.s.recv(65536)
        if not d:
            raise Eof()
        self.buf += d

    def until(self, sep):
        while sep not in self.buf:
            self.more()
        head, self.buf = self.buf.split(sep, 1)
        return head

    def take(self, n):
        while len(self.buf) < n:
            self.more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self):
        """(status, headers, body); a chunked body is joined."""
        lines = self.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
        if "content-length" in headers:
            return status, headers, self.take(int(headers["content-length"]))
        body = b""
        while True:
            size = int(self.until(b"\r\n").split(b";")[0], 16)
            body += self.take(size)
            self.take(2)
            if size == 0:
                return status, headers, body


def answer_text(status, headers, body, stream):
    """(text, finish_reason) of a 200 answer, None for a stream that ended with an error event;
    raises with what is wrong with it."""
    if not stream or "text/event-stream" not in headers.get("content-type", ""):
        choice = json.loads(body)["choices"][0]
        return choice["message"]["content"] or "", choice.get("finish_reason")
    text, finish, done, events = "", None, 0, body.decode("utf-8").split("\n\n")
    for ev in events:
        ev = ev.strip()
        if not ev or ev.startswith(":"):
            continue
        if not ev.startswith("data: "):
            raise AssertionError(f"not an SSE data event: {ev[:80]!r}")
        if done:
            raise AssertionError(f"an event after [DONE]: {ev[:80]!r}")
        data = ev[6:]
        if data == "[DONE]":
            done += 1
            continue
        obj = json.loads(data)
        if "error" in obj:
            return None  # the stream ended with an error event: no text promised
        for c in obj.get("choices", []):
            text += (c.get("delta") or {}).get("content") or ""
            finish = c.get("finish_reason") or finish
    if done != 1:
        raise AssertionError(f"{done} [DONE] events")
    return text, finish


def check_answer(question, kind, status, headers, body, stream):
    if status == 200:
        got = answer_text(status, headers, body, stream)
        text, finish = got if got else (None, None)
        whole = "echo: " + question
        if got is None:
            record(question, kind, "stream_error")
        elif text in (whole, DEGRADED):
            record(question, kind, "200")
        elif finish == "length" and whole.startswith(text):
            record(question, kind, "200_cut")  # a stream cut by its deadline: its first part
        else:
            record(question, kind, "WRONG_TEXT", text[:300])
    else:
        record(question, kind, str(status), body[:200].decode("utf-8", "replace"))


def one_request(question, kind, stream, deadline, hang_after=None, pipelined=b"", junk=0):
    s = socket.create_connection(("127.0.0.1", PORT), timeout=30)
    try:
        s.sendall(request_bytes(question, stream, deadline) + pipelined)
        if hang_after is not None:
            time.sleep(hang_after)
            record(question, kind, "hangup")
            return
        if junk:
            s.setblocking(False)
            sent, chunk = 0, b"J" * 65536
            while sent < junk and not stop.is_set():
                try:
                    sent += s.send(chunk)
                except BlockingIOError:
                    time.sleep(0.01)
                except OSError:
                    record(question, kind, "cut_by_server")
                    return
            if sent >= junk:
                tally("junk:all_sent")
            s.setblocking(True)
            s.settimeout(30)
        st, hd, body = Reader(s).response()
        check_answer(question, kind, st, hd, body, stream)
    except (Eof, ConnectionResetError, BrokenPipeError):
        record(question, kind, "cut_by_server" if junk else "EOF")
    except socket.timeout:
        record(question, kind, "CLIENT_TIMEOUT")
    finally:
        s.close()


def honest(n):
    i = 0
    while not stop.is_set():
        i += 1
        q = f"soak h{n} {i} " + " ".join(f"w{k}" for k in range(random.randint(1, 30)))
        one_request(q, "honest", random.random() < 0.5,
                    random.choice([None, None, 100, 500, 3000]))


def hanger(n):
    i = 0
    while not stop.is_set():
        i += 1
        q = f"soak g{n} {i} hang"
        one_request(q, "hangup", random.random() < 0.5, None, hang_after=random.random() * 0.4)


def pipeliner(n):
    i = 0
    while not stop.is_set():
        i += 1
        one_request(f"soak p{n} {i} pipelined", "pipelined", random.random() < 0.5, None,
                    pipelined=b"G")


def junker(n):
    i = 0
    while not stop.is_set():
        i += 1
        q = f"soak j{n} {i} " + " ".join(f"w{k}" for k in range(30))
        one_request(q, "junk", True, None, junk=random.choice([1, 8, 64]) << 20)


def trickler():
    """Slowloris: 20 connections at a time sending their headers one byte every 1.5 s."""
    head = request_bytes("soak trickle", False, None)
    while not stop.is_set():
        socks = []
        for _ in range(20):
            try:
                socks.append(socket.create_connection(("127.0.0.1", PORT), timeout=5))
            except OSError:
                tally("trickle:connect_refused")
        for pos in range(len(head)):
            if stop.wait(1.5):
                break
            for s in list(socks):
                try:
                    s.send(head[pos:pos + 1])
                except OSError:
                    socks.remove(s)
                    tally("trickle:cut_by_server")
            if not socks:
                break
        for s in socks:
            s.close()


def worker_pids():
    return [int(m.rsplit(":", 1)[1]) for m in redis("ZRANGE", "planb:workers", "0", "-1").split()]


def pause(pid, seconds, what):
    try:
        os.kill(pid, signal.SIGSTOP)
        tally(f"chaos:{what}")
        stop.wait(seconds)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass


def chaos():
    next_worker, next_redis = time.time() + 10, time.time() + 25
    while not stop.wait(0.2):
        now = time.time()
        if now >= next_worker:
            pids = worker_pids()
            if pids:
                pause(random.choice(pids), random.uniform(1, 3), "worker_stopped")
            next_worker = time.time() + random.uniform(12, 20)
        if now >= next_redis:
            pause(REDIS_PID, random.uniform(1, 3), "redis_stopped")
            next_redis = time.time() + random.uniform(25, 35)


def front_pid():
    """The process holding accepted connections on PORT: the front (the master only listens)."""
    out = subprocess.run(["ss", "-tnpH", "state", "established", f"( sport = :{PORT} )"],
                         capture_output=True, text=True).stdout
    pids = re.findall(r"pid=(\d+)", out)
    return int(pids[0]) if pids else None


max_rss = [0]


def sampler():
    while not stop.wait(1.0):
        pid = front_pid()
        if pid is None:
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) // 1024
            max_rss[0] = max(max_rss[0], rss)
        except (OSError, AttributeError):
            pass


failed = []


def check(cond, what):
    """Prints ok or FAIL for one promise; every promise is checked before the test fails."""
    if not cond:
        failed.append(what)
        print("FAIL", what, flush=True)
    else:
        print("ok", what.split(":")[0], flush=True)


def main():
    random.seed(int(os.environ.get("SOAK_SEED", "1")))
    threads = [threading.Thread(target=f, args=a, daemon=True) for f, a in
               [(honest, (n,)) for n in range(6)] + [(hanger, (n,)) for n in range(2)] +
               [(pipeliner, (0,)), (junker, (0,)), (trickler, ()), (chaos, ()), (sampler, ())]]
    for t in threads:
        t.start()
    t0 = time.time()
    while time.time() - t0 < SECONDS:
        time.sleep(5)
        print(f"soak t={int(time.time() - t0)}s requests={len(outcomes)} max_rss_mib={max_rss[0]}",
              flush=True)
    stop.set()
    for t in threads:
        t.join(60)
    time.sleep(10)  # jobs whose clients left finish; results land
    ran, keys = {}, redis("--scan", "--pattern", "planb:result:*").split()
    print(f"figures: front_soak results_in_redis={len(keys)}", flush=True)
    gets = subprocess.run(["redis-cli", "-p", REDIS_PORT], input="".join(f"GET {k}\n" for k in keys),
                          capture_output=True, text=True, timeout=300).stdout.splitlines()
    for line in gets:
        r = json.loads(line or "{}")
        if r.get("model") and (r.get("content") or "").startswith("echo: soak"):
            ran[r["content"][len("echo: "):]] = r
    print("figures: front_soak seconds=%d requests=%d ran_upstream=%d max_front_rss_mib=%d" %
          (SECONDS, len(outcomes), len(ran), max_rss[0]))
    for k in sorted(counts):
        print(f"figures:   {k}={counts[k]}")
    with open(LOG) as f:
        log = f.read()
    check(log.count("event=front_listen") == 1 and "event=worker_died" not in log,
          "front_never_died: the log shows a front restart or a death")
    check(max_rss[0] < RSS_LIMIT_MIB, f"front_rss_bounded: {max_rss[0]} MiB >= {RSS_LIMIT_MIB}")
    wrong = [(q, o) for q, o in outcomes.items() if o[1] == "WRONG_TEXT" or
             (o[1] in ("EOF", "CLIENT_TIMEOUT") and o[0] != "junk")]
    check(not wrong, f"answers_carry_their_text_once: {wrong[:5]}")
    bad = [(q, outcomes.get(q)) for q in ran
           if q in outcomes and outcomes[q][1] not in ("200", "200_cut", "504", "hangup",
                                                       "stream_error", "cut_by_server")]
    check(not bad, f"ran_upstream_means_answered_or_504: {bad[:5]}")
    check(sum(1 for o in outcomes.values() if o[1] == "200") > 100, "answers_flowed: too few 200s")
    if failed:
        raise AssertionError(f"{len(failed)} of the soak's promises broken")


main()
