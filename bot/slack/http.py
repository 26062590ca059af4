"""Slack's Events API over HTTP (`policybot serve --http`): a small server in front of Bolt, like bolt's own adapters.

The request's signature is checked on the raw bytes before anything parses the
body (Slack's signing secret, a numeric timestamp within five minutes), so an
unsigned or replayed request costs nothing and reaches no listener. Bodies are
capped at 1 MB and must arrive within `READ_TIMEOUT` seconds; at most `WORKERS`
requests are handled at once, the rest wait in a bounded queue or get 503. A
malformed signed body gets 400; nothing a client sends gets a 5xx.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import urlparse

from slack_sdk.signature import SignatureVerifier

log = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
MAX_BODY = 1_000_000  # Slack's payloads are far smaller; refused before reading
READ_TIMEOUT = 10.0  # seconds for a whole request to arrive
WORKERS = 16
BACKLOG = 64  # connections waiting for a worker before new ones get 503


class BoundedHTTPServer(HTTPServer):
    """An HTTP server with a fixed pool of worker threads and a bounded queue of accepted connections."""

    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address, handler, workers: int = WORKERS):
        super().__init__(address, handler)
        self._queue: queue.Queue = queue.Queue(maxsize=BACKLOG)
        self._workers = [threading.Thread(target=self._work, name=f"http-{i}", daemon=True) for i in range(workers)]
        for worker in self._workers:
            worker.start()

    def process_request(self, request, client_address):
        try:
            self._queue.put_nowait((request, client_address))
        except queue.Full:
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)

    def _work(self):
        while True:
            request, client_address = self._queue.get()
            try:
                self.finish_request(request, client_address)
            except Exception:  # a broken connection is the client's problem, never the server's
                log.debug("connection from a client failed", exc_info=True)
            finally:
                self.shutdown_request(request)


def make_http_server(app, signing_secret: str, host: str = "127.0.0.1", port: int = 0) -> BoundedHTTPServer:
    """The server translating HTTP requests to Bolt and back, as bolt's Flask adapter does."""
    from slack_bolt.request import BoltRequest

    verifier = SignatureVerifier(signing_secret)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = READ_TIMEOUT  # a stalled upload frees its worker

        def log_message(self, fmt, *args):  # request lines only at debug level (no bodies ever)
            log.debug("http %s", fmt % args)

        def do_GET(self):
            if urlparse(self.path).path == "/healthz":
                self._send(200, "ok", {"content-type": ["text/plain"]})
            else:
                self._send(404, "not found", {})

        def do_POST(self):
            parsed = urlparse(self.path)
            if parsed.path != EVENTS_PATH:
                self._send(404, "not found", {})
                return
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self._send(411 if not self.headers.get("Content-Length") else 400, "a Content-Length is required", {})
                return
            if length < 0 or length > MAX_BODY:
                self._send(413, "too large", {})
                return
            try:
                raw = self.rfile.read(length)
            except (socket.timeout, TimeoutError, OSError):
                self.close_connection = True
                return  # too slow or gone: nothing to answer
            if len(raw) != length:
                self.close_connection = True
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            timestamp = headers.get("x-slack-request-timestamp", "")
            if not timestamp.isdigit() or not verifier.is_valid(raw, timestamp, headers.get("x-slack-signature", "")):
                self._send(401, "invalid request", {})
                return
            body = raw.decode("utf-8", "replace")
            try:
                response = app.dispatch(BoltRequest(body=body, query=parsed.query, headers={k: [v] for k, v in headers.items()}))
            except Exception as exc:  # a signed body Bolt cannot read: the sender's fault
                log.info("malformed signed request refused (%s)", type(exc).__name__)
                self._send(400, "malformed request", {})
                return
            status = response.status if response.status < 500 else 400
            self._send(status, response.body or "", response.headers)

        def _send(self, status: int, body: str, headers: dict):
            data = body.encode("utf-8")
            try:
                self.send_response(status)
                for key, values in headers.items():
                    if key.lower() in ("content-length", "connection"):
                        continue
                    for value in values if isinstance(values, (list, tuple)) else [values]:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except OSError:
                self.close_connection = True

    return BoundedHTTPServer((host, port), Handler)
