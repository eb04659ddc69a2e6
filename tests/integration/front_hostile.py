"""front_hostile.py -- clients that attack the front door's connection handling, over raw sockets.

Run by test_front_hostile.sh as `python3 front_hostile.py PORT MASTER_PID MOCK_URL LOG CHECK...`
against a planb whose config the script documents (one worker, http limits set small). Each
check prints "ok <name>" or raises, which fails the test. The front's memory is read from
/proc/<pid>/status (VmRSS) of the process that holds the client's connection.
"""
import json
import os
import socket
import sys
import threading
import time
import urllib.request

PORT, MASTER, MOCK_URL, LOG = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
KEY = "sk-hostile"
MAX_CONNECTIONS = 80
MIB = 1 << 20


def mock_set(model, behaviour):
    req = urllib.request.Request(f"{MOCK_URL}/_mock/models/{model}",
                                 data=json.dumps(behaviour).encode(), method="POST")
    urllib.request.urlopen(req, timeout=5).read()


def connect(timeout=10):
    return socket.create_connection(("127.0.0.1", PORT), timeout=timeout)


def head(length, key=True, extra=(), path="/v1/chat/completions"):
    lines = [f"POST {path} HTTP/1.1", "Host: planb", "Content-Type: application/json"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    if key:
        lines.append(f"Authorization: Bearer {KEY}")
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def body_of(question, **extra):
    return json.dumps({"model": "default", "messages": [{"role": "user", "content": question}],
                       **extra}).encode()


LEFTOVER = {}  # socket -> bytes received past the response read last (pipelined answers)


def read_response(s, timeout=10):
    """(status, headers, body) of one response, chunked or not; None on EOF before a status."""
    s.settimeout(timeout)
    buf = LEFTOVER.pop(s, b"")
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            return None
        buf += d
    top, rest = buf.split(b"\r\n\r\n", 1)
    lines = top.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (l.split(":", 1) for l in lines[1:])}
    if "content-length" in headers:
        n = int(headers["content-length"])
        while len(rest) < n:
            d = s.recv(65536)
            if not d:
                break
            rest += d
        LEFTOVER[s] = rest[n:]
        return status, headers, rest[:n]
    body = b""
    while True:  # chunked; an early EOF returns what came
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
            LEFTOVER[s] = rest
            return status, headers, body


def stream_text(body):
    return "".join(json.loads(l[6:])["choices"][0]["delta"].get("content") or ""
                   for l in body.decode().split("\n") if l.startswith("data: {") and '"choices":[{' in l)


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


def healthz(timeout=10):
    s = connect(timeout)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: planb\r\n\r\n")
    r = read_response(s, timeout)
    s.close()
    return r is not None and r[0] == 200


def children(pid):
    out = []
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(p))
            except OSError:
                pass
    return out


def front_pid(s):
    """The planb process that holds the server side of connection s."""
    lport = s.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            a = line.split()
            if int(a[1].split(":")[1], 16) == PORT and int(a[2].split(":")[1], 16) == lport:
                inode = a[9]
    check(inode, "the front's end of the connection is not in /proc/net/tcp")
    for pid in children(MASTER):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
        except OSError:
            pass
    raise AssertionError("no planb child holds the connection")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def log_has(text):
    with open(LOG) as f:
        return text in f.read()


def check_keepalive():
    """A model that pauses longer than client_timeout_ms (1 s) between pieces: the stream is
    kept alive by SSE comments and ends with the whole text and [DONE]."""
    mock_set("primary", {"mode": "ok", "chunk_interval_ms": 1600})
    s = connect(15)
    s.sendall(_stream_request("pause one two"))
    st, h, body = read_response(s, timeout=20)
    s.close()
    mock_set("primary", {"mode": "ok"})
    check(st == 200 and stream_text(body) == "echo: pause one two",
          f"a paused stream was cut: {st} {body[-300:]!r}")
    check(body.rstrip().endswith(b"data: [DONE]"), f"no [DONE] after the pauses: {body[-200:]!r}")
    check(b"\n: keep-alive\n\n" in b"\n" + body, f"no keep-alive comment: {body[:300]!r}")
    print("ok stream kept alive through pauses")


def _stream_request(question, **extra):
    b = body_of(question, stream=True, **extra)
    return head(len(b)) + b


def check_junk_while_streaming():
    """200 MiB of junk sent on a stream's socket while its answer is written: the front reads
    a bounded amount (its RSS stays within 48 MiB of before), the stream is whole, and the
    front serves on."""
    words = " ".join(f"w{i}" for i in range(30))
    mock_set("primary", {"mode": "ok", "chunk_interval_ms": 100})
    s = connect(20)
    s.sendall(_stream_request(words))
    s.settimeout(10)
    first = s.recv(4096)
    check(first.startswith(b"HTTP/1.1 200"), f"junk stream: {first[:100]!r}")
    pid = front_pid(s)
    before = rss_mib(pid)
    peak = [before]
    sent = [0]
    stop = threading.Event()

    def junk():
        piece = b"J" * MIB
        try:
            while sent[0] < 200 * MIB and not stop.is_set():
                s.sendall(piece)
                sent[0] += len(piece)
        except OSError:
            pass

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mib(pid))
            time.sleep(0.02)

    threads = [threading.Thread(target=junk), threading.Thread(target=sample)]
    for t in threads:
        t.start()
    rest = b""
    s.settimeout(20)
    try:
        while b"data: [DONE]" not in rest:
            d = s.recv(65536)
            if not d:
                break
            rest += d
    finally:
        stop.set()
    peak[0] = max(peak[0], rss_mib(pid))
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # the front closed it first (the junk is a bad next request)
    s.close()
    for t in threads:
        t.join(10)
    mock_set("primary", {"mode": "ok"})
    check(peak[0] - before < 48, f"the front grew {peak[0] - before:.0f} MiB reading "
          f"{sent[0] // MIB} MiB of junk sent while streaming")
    check(b"data: [DONE]" in rest and words.split()[-1].encode() in first + rest,
          f"the junk-sender's stream did not end whole: {rest[-200:]!r}")
    check(healthz(), "front down after junk while streaming")
    print(f"ok junk while streaming ({sent[0] // MIB} MiB sent, +{peak[0] - before:.1f} MiB)")


def check_slowloris():
    """http.max_connections (80) clients trickling a header byte every 0.4 s (under the 1-s
    idle timeout): each is dropped at http.request_read_timeout_ms (3 s), so a new /healthz is
    answered within a few seconds."""
    socks = []
    for _ in range(MAX_CONNECTIONS):
        s = connect()
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: planb\r\nX-Slow: ")
        socks.append(s)
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for s in socks:
                try:
                    s.send(b"a")
                except OSError:
                    pass
            time.sleep(0.4)

    t = threading.Thread(target=trickle)
    t.start()
    try:
        time.sleep(0.5)
        t0 = time.time()
        ok = False
        try:
            ok = healthz(timeout=8)
        except OSError:
            pass
        took = time.time() - t0
    finally:
        stop.set()
        t.join()
        for s in socks:
            s.close()
    check(ok, f"/healthz got no answer in {took:.1f} s while {MAX_CONNECTIONS} clients trickled")
    check(log_has("event=front_read_timeout"), "no front_read_timeout logged")
    print(f"ok slow trickles dropped at the read deadline (/healthz in {took:.1f} s)")


def check_keyless_bodies():
    """60 requests without Authorization, each sending 1 MiB less a byte of its body: 401
    before the body is read, and the front's RSS stays within 16 MiB of before."""
    probe = connect()
    probe.sendall(b"GET /healthz HTTP/1.1\r\nHost: planb\r\n\r\n")
    read_response(probe)
    pid = front_pid(probe)
    before = rss_mib(pid)
    socks, codes = [], []
    body = b"{" + b" " * (MIB - 2)
    for _ in range(60):
        s = connect()
        s.sendall(head(MIB, key=False))
        try:
            s.sendall(body)  # all but its last byte
        except OSError:
            pass  # refused and closed under it: fine
        socks.append(s)
    after = rss_mib(pid)
    for s in socks:
        try:
            r = read_response(s, timeout=5)
            codes.append(r and r[0])
        except OSError:
            codes.append(None)
        s.close()
    probe.close()
    check(after - before < 16, f"60 keyless 1-MiB bodies grew the front {after - before:.0f} MiB")
    check(all(c == 401 for c in codes), f"keyless bodies were not refused at once: {codes}")
    print(f"ok keyless bodies refused before they are read (+{after - before:.1f} MiB)")


def check_body_budget():
    """http.max_bodies_bytes (4 MiB): four bodies of 900 KiB on their way in fit, the fifth
    gets 503 overloaded at its headers; once they are in, a new request is answered."""
    n = 900 << 10
    socks = []
    for _ in range(4):
        s = connect()
        s.sendall(head(n) + b"{")
        socks.append(s)
    time.sleep(0.2)
    s = connect()
    s.sendall(head(n) + b"{")
    r = read_response(s, timeout=5)
    s.close()
    check(r is not None and r[0] == 503 and json.loads(r[2])["error"]["code"] == "overloaded"
          and r[1].get("retry-after"), f"a body over the budget: {r}")
    for s in socks:
        s.close()
    b = body_of("after the budget")
    wait_until(lambda: _chat_status(head(len(b)) + b) == 200, 5, "no answer after the budget freed")
    # A body of 900 KiB that does arrive whole passes the filter and is answered.
    b = body_of("big " + "x" * (900 << 10))
    st = _chat_status(head(len(b)) + b)
    check(st in (200, 400), f"a 900-KiB body: {st}")
    print("ok bodies in flight bounded")


def _chat_status(raw):
    s = connect()
    s.sendall(raw)
    r = read_response(s)
    s.close()
    return r and r[0]


def check_framing():
    """RFC 9112 §6.3: conflicting or non-canonical Content-Length is a 400 (the connection
    closes); chunk extensions are valid."""
    b = body_of("framing")
    bad = [[f"Content-Length: {len(b)}", "Content-Length: 5"],
           [f"Content-Length: +{len(b)}"],
           ["Content-Length:", f" {len(b)}"],
           [f"Content-Length: {len(b)}", "Transfer-Encoding: chunked"]]
    for lines in bad:
        s = connect()
        s.sendall(head(None, extra=lines) + b)
        r = read_response(s, timeout=5)
        check(r is not None and r[0] == 400, f"Content-Length {lines}: {r and r[:2]}")
        check(r[1].get("connection", "").lower() == "close", f"{lines}: the connection stays open")
        s.close()
    half = len(b) // 2
    chunked = (b"%x;ext=1\r\n" % half + b[:half] + b"\r\n" +
               b"%x ; name=\"v\"\r\n" % (len(b) - half) + b[half:] + b"\r\n0;last\r\n\r\n")
    s = connect()
    s.sendall(head(None, extra=["Transfer-Encoding: chunked"]) + chunked)
    r = read_response(s)
    s.close()
    check(r is not None and r[0] == 200 and b"echo: framing" in r[2],
          f"a chunked body with extensions: {r and r[:2]} {r and r[2][:200]}")
    print("ok framing")


def check_pipelined():
    """Requests sent back to back on one connection (a stream, a plain one, a chunked one with
    extensions, a /healthz) are each answered, in order: the next one is held back until the
    answer before it is out, then read."""
    b1 = body_of("pipe one", stream=True)
    b2 = body_of("pipe two")
    b3 = body_of("pipe three")
    raw = (head(len(b1)) + b1 + head(len(b2)) + b2 +
           head(None, extra=["Transfer-Encoding: chunked"]) + b"%x;x=y\r\n" % len(b3) + b3 +
           b"\r\n0\r\n\r\n" + b"GET /healthz HTTP/1.1\r\nHost: planb\r\n\r\n")
    s = connect()
    s.sendall(raw)
    got = [read_response(s) for _ in range(4)]
    s.close()
    check(all(g is not None for g in got), f"pipelined answers missing: {[g and g[0] for g in got]}")
    check(got[0][0] == 200 and stream_text(got[0][2]) == "echo: pipe one", f"pipelined stream: {got[0]}")
    check(got[1][0] == 200 and b"echo: pipe two" in got[1][2], f"pipelined second: {got[1][:2]}")
    check(got[2][0] == 200 and b"echo: pipe three" in got[2][2], f"pipelined chunked: {got[2][:2]}")
    check(got[3][0] == 200 and got[3][2] == b"ok\n", f"pipelined healthz: {got[3]}")
    print("ok pipelined requests")


def check_drain_cut(hup):
    """A reload while a long stream is written: the old front's drain_timeout_ms (1.5 s) ends
    it with an error event, never a silent cut."""
    mock_set("primary", {"mode": "ok", "chunk_interval_ms": 200})
    words = " ".join(f"d{i}" for i in range(60))
    s = connect(20)
    s.sendall(_stream_request(words))
    s.settimeout(10)
    got = s.recv(4096)
    check(got.startswith(b"HTTP/1.1 200"), f"drain stream: {got[:100]!r}")
    os.kill(MASTER, hup)
    s.settimeout(15)
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    mock_set("primary", {"mode": "ok"})
    check(b"data: [DONE]" in got and b'"code":"drain_timeout"' in got,
          f"a stream cut by the drain had no error event: {got[-300:]!r}")
    wait_until(healthz, 10, "no front after the reload")
    print("ok drain cut sends an error event")


def main():
    import signal
    checks = {"keepalive": check_keepalive, "junk": check_junk_while_streaming,
              "slowloris": check_slowloris, "keyless": check_keyless_bodies,
              "budget": check_body_budget, "framing": check_framing, "pipeline": check_pipelined,
              "drain": lambda: check_drain_cut(signal.SIGHUP)}
    for name in sys.argv[5:]:
        checks[name]()
    print("PASS checks")


if __name__ == "__main__":
    main()
