#!/usr/bin/env python3
"""upstream_relay.py -- what stands between planb and a provider in the tests: a forward
proxy or a TLS terminator (python3 stdlib only).

  upstream_relay.py proxy --log FILE [--auth USER:PASSWORD]
      An HTTP forward proxy. CONNECT host:port opens a tunnel; a request with an
      absolute URI (POST http://host:port/path) is sent on in origin form with
      "Connection: close" and its answer relayed back, one request per client
      connection. With --auth each request must carry
      "Proxy-Authorization: Basic base64(USER:PASSWORD)", else 407. Each request
      appends one line to FILE: "<METHOD> <target> <status>" (200 for an opened
      tunnel), which the tests count.
  upstream_relay.py tls --cert F --key F --upstream HOST:PORT [--client-ca F] [--log FILE]
      A TLS terminator: serves TLS with the given certificate and relays the clear
      bytes to HOST:PORT (planb-mock). With --client-ca a client certificate signed
      by that CA is required (ssl.CERT_REQUIRED). Each handshake appends
      "handshake_ok" or "handshake_failed <reason>" to FILE.

Both listen on 127.0.0.1 port 0 and print "port=N" once listening (as planb-mock
does), and only ever connect to loopback addresses. SIGTERM ends them."""

import argparse
import base64
import os
import socket
import ssl
import sys
import threading

HEAD_MAX_BYTES = 65536  # a request head longer than this is refused (431)
BODY_MAX_BYTES = 16 << 20  # an absolute-URI request body longer than this is refused (413)
IDLE_S = 30  # a connection quiet this long is closed
LINGER_S = 1  # how long a refused client's bytes are read before the close
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")

log_lock = threading.Lock()


def log_line(path, line):
    if not path:
        return
    with log_lock, open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def pipe(src, dst):
    """Copies src to dst until either side ends, then shuts both down."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def relay(a, b):
    """Pipes a and b both ways until both directions ended, then closes them."""
    t = threading.Thread(target=pipe, args=(b, a), daemon=True)
    t.start()
    pipe(a, b)
    t.join(IDLE_S)
    a.close()
    b.close()


def read_head(sock):
    """The request head (bytes up to and with CRLFCRLF) and what came after it; None, None
    when the client closed first, or b"", None when the head passed HEAD_MAX_BYTES."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        if len(buf) > HEAD_MAX_BYTES:
            return b"", None
        data = sock.recv(65536)
        if not data:
            return None, None
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def answer(sock, status, reason, extra=""):
    body = reason.encode()
    sock.sendall(
        f"HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n".encode() + body
    )


def split_hostport(hp, default_port):
    """("host", port) of "host[:port]" or "[v6]:port"; ValueError when malformed."""
    if hp.startswith("["):
        host, _, rest = hp[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = hp.rpartition(":") if ":" in hp else (hp, "", "")
    return host, int(port) if port else default_port


def connect_loopback(host, port):
    if host not in LOOPBACK:
        raise PermissionError(host)
    return socket.create_connection((host.strip("[]"), port), timeout=IDLE_S)


def refuse(conn, args, method, target, status, reason, extra=""):
    """Logs the request as refused with status, answers so and closes."""
    log_line(args.log, f"{method} {target} {status}")
    answer(conn, status, reason, extra)
    conn.close()


def open_upstream(conn, args, method, target, hostport, default_port):
    """A connection to hostport, logged as relayed (200); None, refused with 502, when the
    target is not on loopback or does not answer."""
    try:
        host, port = split_hostport(hostport, default_port)
        up = connect_loopback(host, port)
    except (OSError, ValueError) as e:
        refuse(conn, args, method, target, 502, f"Bad Gateway ({type(e).__name__})")
        return None
    log_line(args.log, f"{method} {target} 200")
    return up


def proxy_client(conn, args):
    conn.settimeout(IDLE_S)
    try:
        head, rest = read_head(conn)
        if head is None:
            conn.close()
            return
        if rest is None:
            refuse(conn, args, "-", "-", 431, "Request Header Fields Too Large")
            return
        lines = head.decode("latin-1").split("\r\n")
        method, target, _version = lines[0].split(" ", 2)
        headers = []
        for ln in lines[1:]:
            name, _, value = ln.partition(":")
            headers.append((name.strip(), value.strip()))
        lower = {n.lower(): v for n, v in headers}
        if args.auth is not None:
            want = "Basic " + base64.b64encode(args.auth.encode()).decode()
            if lower.get("proxy-authorization") != want:
                refuse(conn, args, method, target, 407, "Proxy Authentication Required",
                       'Proxy-Authenticate: Basic realm="relay"\r\n')
                return
        if method == "CONNECT":
            up = open_upstream(conn, args, method, target, target, 443)
            if up is None:
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if rest:
                up.sendall(rest)
            relay(conn, up)
            return
        if not target.startswith("http://"):
            refuse(conn, args, method, target, 400, "Bad Request (absolute URI expected)")
            return
        hostport, _, path = target[len("http://"):].partition("/")
        length = int(lower.get("content-length", "0"))
        if length > BODY_MAX_BYTES or "chunked" in lower.get("transfer-encoding", ""):
            refuse(conn, args, method, target, 413, "Payload Too Large")
            return
        while len(rest) < length:
            data = conn.recv(65536)
            if not data:
                conn.close()
                return
            rest += data
        up = open_upstream(conn, args, method, target, hostport, 80)
        if up is None:
            return
        skip = ("proxy-authorization", "proxy-connection", "connection", "keep-alive")
        out = [f"{method} /{path} HTTP/1.1"]
        out += [f"{n}: {v}" for n, v in headers if n.lower() not in skip]
        out.append("Connection: close")
        up.sendall(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + rest[:length])
        relay(conn, up)
    except (OSError, ValueError) as e:
        print(f"relay: client: {e}", file=sys.stderr, flush=True)
        conn.close()


def linger_close(sock):
    """Closes sock the way a web server does after refusing a client: write side first, then
    what the client had sent is read and dropped (at most LINGER_S), so the kernel sends
    what went before (a TLS alert) and a FIN, not a reset that could overtake it."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(LINGER_S)
        for _ in range(64):
            if not sock.recv(65536):
                break
    except OSError:
        pass
    sock.close()


def tls_client(conn, args, ctx):
    conn.settimeout(IDLE_S)
    tconn = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    try:
        tconn.do_handshake()
    except (ssl.SSLError, OSError) as e:
        log_line(args.log, f"handshake_failed {e}")
        linger_close(tconn)
        return
    log_line(args.log, "handshake_ok")
    host, port = split_hostport(args.upstream, 80)
    try:
        up = connect_loopback(host, port)
    except OSError as e:
        print(f"relay: upstream: {e}", file=sys.stderr, flush=True)
        tconn.close()
        return
    relay(tconn, up)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("proxy")
    p.add_argument("--log", required=True)
    p.add_argument("--auth")
    t = sub.add_parser("tls")
    t.add_argument("--cert", required=True)
    t.add_argument("--key", required=True)
    t.add_argument("--upstream", required=True)
    t.add_argument("--client-ca")
    t.add_argument("--log")
    args = ap.parse_args()

    ctx = None
    if args.mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    print(f"port={srv.getsockname()[1]}", flush=True)
    while True:
        conn, _ = srv.accept()
        if args.mode == "proxy":
            target, targs = proxy_client, (conn, args)
        else:
            target, targs = tls_client, (conn, args, ctx)
        threading.Thread(target=target, args=targs, daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        os._exit(0)
