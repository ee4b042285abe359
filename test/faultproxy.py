"""A fault-injecting HTTP proxy in front of the test S3 server, on 127.0.0.1 only.

It forwards every request to the server and, where a rule matches, injects a fault:

    500        answer 500 InternalError (S3's XML body), nothing forwarded
    503        answer 503 SlowDown, nothing forwarded
    412        answer 412 PreconditionFailed, nothing forwarded: a conditional write
               refused as if another writer had won
    409        answer 409 ConditionalRequestConflict (AWS's answer to a conditional
               write while another on the key is in flight), nothing forwarded
    reset      reset the connection before any answer, nothing forwarded
    cut        forward, then send the headers and only `after` bytes of the body
               (with `then`, a callable run first: the object changes meanwhile)
    drop       forward (the server applies the request), then reset the connection
               without an answer: a write that landed but whose answer was lost
    stall      forward, then withhold the answer for `seconds` before resetting the
               connection: a stalled connection, which the client gives up on after
               its read timeout and sends again. With `then`, a callable run while
               the answer is held, every other request waits until it returns: the
               write another client makes before the resend arrives
    delay      wait `seconds`, then forward
    ignore     forward without If-Match / If-None-Match (re-signed), like a store
               that accepts conditional writes and ignores the conditions
    kms        forward without the SSE-KMS headers (re-signed), for a store with no
               KMS; what each request asked for is kept in `proxy.encryption`

A rule matches by method and a regex on the object key, and fires on the `nth`
matching request, on the `first` N, on `every` kth, with a `chance` (drawn from a
generator seeded with `seed`, so a run can be replayed), or (none of those) on all of
them.
Every fault it injects is logged in `proxy.log` as (fault, method, key), so tests can
assert that it fired. Every request answered is in `proxy.timeline` as (arrived,
answered) times; in_line() counts how many of them waited on each other; and in
`proxy.traffic` with the bytes of its body and of its answer's.
"""

import dataclasses
import http.client
import random
import http.server
import re
import socket
import struct
import threading
import time
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.credentials

ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "412": (412, "PreconditionFailed", "At least one of the pre-conditions you specified "
            "did not hold"),
    "409": (409, "ConditionalRequestConflict", "A conflicting conditional operation is "
            "currently in progress against this resource. Please try again."),
}
SSE = "x-amz-server-side-encryption"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade"}


@dataclasses.dataclass
class Rule:
    fault: str
    method: str = None  # None: any
    key: str = ".*"     # regex searched in the object key
    nth: int = None
    first: int = None
    every: int = None
    chance: float = None
    seed: int = 0
    after: int = 0        # cut: body bytes sent before the cut
    seconds: float = 0.0  # delay, stall
    then: object = None   # stall: run while the answer is held; cut: before it
    seen: int = 0

    def __post_init__(self):
        self.draw = random.Random(self.seed)

    def fires(self, method, key):
        if self.method and method != self.method or not re.search(self.key, key):
            return False
        self.seen += 1
        if self.nth is not None:
            return self.seen == self.nth
        if self.first is not None:
            return self.seen <= self.first
        if self.every is not None:
            return self.seen % self.every == 0
        if self.chance is not None:
            return self.draw.random() < self.chance
        return True


class FaultProxy:
    def __init__(self, upstream, credentials=None, region="us-east-1"):
        parsed = urllib.parse.urlsplit(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.credentials = credentials  # (key, secret), to re-sign for 'ignore'
        self.region = region
        self.rules, self.log, self.timeline = [], [], []
        self.traffic = []  # (method, key, body bytes sent, body bytes answered)
        self.encryption = []  # (method, path with query, SSE header, KMS key id)
        self.errors = []      # what a stall's `then` raised
        self.lock = threading.Lock()
        self.open = threading.Event()  # cleared while a stall's `then` runs
        self.open.set()
        handler = type("Handler", (Handler,), {"proxy": self})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, fault, **match):
        with self.lock:
            self.rules.append(Rule(fault, **match))

    def clear(self):
        with self.lock:
            self.rules = []

    def reset(self):
        """No rules, and nothing fired yet."""
        with self.lock:
            self.rules = []
            self.log = []

    def fired(self, fault=None):
        """The logged faults (of one kind)."""
        with self.lock:
            return [entry for entry in self.log if fault in (None, entry[0])]

    def decide(self, method, key):
        with self.lock:
            for rule in self.rules:
                if rule.fires(method, key):
                    if rule.fault != "ignore":
                        self.log.append((rule.fault, method, key))
                    return rule
        return None

    def in_line(self):
        """The most requests of the timeline that ran one after another, none
        overlapping the next, as (method, key): the round trips a command waited for.
        (Lanes that start a little apart, as git-lfs's do, can add one.)"""
        chain, free = [], float("-inf")
        with self.lock:
            for arrived, answered, method, key in sorted(self.timeline, key=lambda t: t[1]):
                if arrived >= free:
                    chain.append((method, key))
                    free = answered
        return chain

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy = None  # set per server

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.handle_request()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def handle_request(self):
        arrived = time.monotonic()
        body = self.read_body()
        if not self.proxy.open.wait(300):
            return self.reset()
        path = urllib.parse.urlsplit(self.path).path
        key = urllib.parse.unquote(path.split("/", 2)[2] if path.count("/") >= 2 else "")
        rule = self.proxy.decide(self.command, key)
        fault = rule.fault if rule else None
        if fault in ERRORS:
            return self.answer_error(*ERRORS[fault])
        if fault == "reset":
            return self.reset()
        if fault == "delay":
            time.sleep(rule.seconds)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        if fault == "ignore":
            headers = self.resigned(headers, body, ("if-match", "if-none-match"))
        if fault == "kms":
            lower = {k.lower(): v for k, v in headers.items()}
            with self.proxy.lock:
                self.proxy.encryption.append((
                    self.command, self.path, lower.get(SSE),
                    lower.get(f"{SSE}-aws-kms-key-id")))
            headers = self.resigned(headers, body, (SSE, f"{SSE}-aws-kms-key-id"))
        status, reason, answer_headers, answer = self.forward(headers, body)
        if fault == "ignore" and status in (200, 412):
            self.proxy.log.append(("ignore", self.command, key))
        if fault == "drop":
            return self.reset()
        if fault == "stall":
            return self.stall(rule)
        self.send_response(status, reason)
        for name, value in answer_headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if "content-length" not in {n.lower() for n, _ in answer_headers}:
            self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if fault == "cut":
            if rule.then:  # e.g. the object changes before the client comes back
                rule.then()
            self.wfile.write(answer[:rule.after])
            self.wfile.flush()
            return self.reset()
        if self.command != "HEAD":
            self.wfile.write(answer)
        self.wfile.flush()
        with self.proxy.lock:
            self.proxy.timeline.append((arrived, time.monotonic(), self.command, key))
            self.proxy.traffic.append((self.command, key, len(body),
                                       0 if self.command == "HEAD" else len(answer)))

    def stall(self, rule):
        """The request was applied; hold its answer, run `then` with everything else
        waiting, and reset the connection."""
        started = time.monotonic()
        if rule.then:
            self.proxy.open.clear()
            try:
                rule.then()
            except Exception as exc:  # the test asserts on proxy.errors
                self.proxy.errors.append(exc)
            finally:
                self.proxy.open.set()
        time.sleep(max(0.0, rule.seconds - (time.monotonic() - started)))
        self.reset()

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                chunk = self.rfile.read(size + 2)[:size]
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return body
                body += chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def forward(self, headers, body):
        connection = http.client.HTTPConnection(*self.proxy.upstream, timeout=60)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            connection.close()

    def resigned(self, headers, body, dropped):
        """The same request without the `dropped` headers, signed again (they are
        part of the signature)."""
        headers = {k: v for k, v in headers.items()
                   if k.lower() not in (*dropped, "authorization", "x-amz-date")}
        host = headers.get("Host") or headers.get("host")
        request = botocore.awsrequest.AWSRequest(
            method=self.command, url=f"http://{host}{self.path}", data=body, headers=headers)
        signer = botocore.auth.S3SigV4Auth(
            botocore.credentials.Credentials(*self.proxy.credentials), "s3", self.proxy.region)
        signer.add_auth(request)
        return dict(request.headers.items())

    def answer_error(self, status, code, message):
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message}</Message><RequestId>faultproxy</RequestId>"
                "</Error>").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reset(self):
        """Close the connection with a TCP reset, as a dropped connection looks."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
