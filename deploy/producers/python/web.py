#!/usr/bin/python3
"""web.py -- a tiny web backend that asks planb once per request (standard library + python3-redis).

    /usr/bin/python3 web.py [--redis URL] [--port 8080]
    curl -s localhost:8080/ask -d '{"question": "Where is my order?"}'
    -> {"answer": "...", "status": "ok", "source": "primary", "model": "gpt-4o", "id": "py-..."}
    curl -sN 'localhost:8080/ask/stream?question=Where+is+my+order%3F'
    -> server-sent events: "data: {"text": "..."}" per piece as planb streams it, then
       "event: end" with the result JSON as its data (a browser's EventSource reads them)

Each request thread pushes a job and blocks on its reply list; the Redis client's
connection pool gives each waiting request its own connection. The HTTP status
says what the user got: 200 an answer (even a degraded one: it is a polite reply),
400 a bad request, 504 no result in time. Prints "port=N" once listening (--port 0 = any).

A request's traceparent/tracestate headers (the backend is already inside a trace) go on
as the job's fields, so planb's spans continue that trace; planb validates them.
"""
import argparse
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import redis

from planb_producer import ask, ask_stream

MAX_BODY = 64 * 1024  # bytes of request body read; a question is far smaller


class AskHandler(BaseHTTPRequestHandler):
    r = None            # redis.Redis, shared (thread-safe pool)
    timeout_s = 30.0    # wait for planb's result

    def _send(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _trace(self):
        """The incoming request's W3C Trace Context headers, as ask()'s keywords."""
        return {"traceparent": self.headers.get("traceparent"),
                "tracestate": self.headers.get("tracestate")}

    def do_GET(self):
        """GET /ask/stream?question=...: relays the job's planb:stream:<id> as SSE."""
        url = urlparse(self.path)
        question = (parse_qs(url.query).get("question") or [""])[0]
        if url.path != "/ask/stream" or not question or len(question) > MAX_BODY:
            return self._send(400, {"error": "GET /ask/stream?question=..."})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            for kind, entry in ask_stream(self.r, [{"role": "user", "content": question}],
                                          timeout_s=self.timeout_s, **self._trace()):
                if kind == "delta":
                    self.wfile.write(f"data: {json.dumps({'text': entry['text']})}\n\n".encode())
                elif kind == "end":
                    self.wfile.write(f"event: end\ndata: {json.dumps(entry)}\n\n".encode())
                self.wfile.flush()
        except TimeoutError:
            self.wfile.write(b'event: error\ndata: {"error": "no answer in time"}\n\n')
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser left; planb still stores the result

    def do_POST(self):
        if self.path != "/ask":
            return self._send(404, {"error": "POST /ask"})
        n = int(self.headers.get("Content-Length") or 0)
        if n <= 0 or n > MAX_BODY:
            return self._send(400, {"error": f"body must be 1..{MAX_BODY} bytes"})
        try:
            question = json.loads(self.rfile.read(n))["question"]
            if not isinstance(question, str) or not question:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            return self._send(400, {"error": 'expected {"question": "..."}'})
        try:
            res = ask(self.r, [{"role": "user", "content": question}], timeout_s=self.timeout_s,
                      **self._trace())
        except TimeoutError:
            return self._send(504, {"error": "no answer in time"})
        if res.get("status") == "invalid":
            return self._send(400, {"error": res.get("error"), "id": res.get("id")})
        self._send(200, {"answer": res.get("content"), "status": res.get("status"),
                         "source": res.get("source"), "model": res.get("model"), "id": res.get("id")})

    def log_message(self, fmt, *args):  # one line per request on stderr, like a web server
        sys.stderr.write("web: " + (fmt % args) + "\n")


def main():
    p = argparse.ArgumentParser(description="HTTP front end that asks planb per request.")
    p.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--timeout", type=float, default=30.0)
    a = p.parse_args()
    AskHandler.r = redis.Redis.from_url(a.redis)
    AskHandler.timeout_s = a.timeout
    srv = ThreadingHTTPServer((a.host, a.port), AskHandler)
    print(f"port={srv.server_address[1]}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
