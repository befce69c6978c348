"""A webhook receiver for tests/notify.rs that checks Standard Webhooks signatures with
Python's own hmac, independently of roster's implementation.

usage: webhook_receiver.py OUT DIR SECRET...   (prints "PORT n" once listening)
Paths choose the behaviour: /ok answers 200; /fail-first answers 500 to the first delivery
of each message id, then 200; /slow waits 20 s, then 200; /hold waits until DIR/release
exists (at most 60 s) and answers 503 to the first delivery of each id, then 200.
Every request is appended to OUT as a JSON line just before it is answered; /hold also writes a "held"
line when it starts waiting.
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

out, workdir, secrets = sys.argv[1], sys.argv[2], sys.argv[3:]
lock = threading.Lock()
seen = set()


def record(entry):
    with lock, open(out, "a") as f:
        f.write(json.dumps(entry) + "\n")


def verify(msg_id, ts, header, body):
    if abs(time.time() - int(ts)) > 300:
        return False
    signed = f"{msg_id}.{ts}.".encode() + body
    for secret in secrets:
        key = base64.b64decode(secret.removeprefix("whsec_"))
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for sig in header.split(" "):
            version, _, value = sig.partition(",")
            if version == "v1" and hmac.compare_digest(value, expected):
                return True
    return False


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        msg_id = self.headers.get("webhook-id", "")
        ts = self.headers.get("webhook-timestamp", "0")
        ok = verify(msg_id, ts, self.headers.get("webhook-signature", ""), body)
        with lock:
            first = msg_id not in seen
            seen.add(msg_id)
        status = 200 if ok else 401
        if ok and self.path == "/fail-first" and first:
            status = 500
        if ok and self.path == "/slow":
            time.sleep(20)
        if ok and self.path == "/hold" and first:
            record({"held": msg_id})
            deadline = time.time() + 60
            while not os.path.exists(os.path.join(workdir, "release")) and time.time() < deadline:
                time.sleep(0.05)
            status = 503
        # Recorded before the answer: a client that has its answer finds the request logged.
        record({
            "path": self.path,
            "id": msg_id,
            "verified": ok,
            "status": status,
            "body": json.loads(body or b"null"),
        })
        try:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()
        except OSError:
            pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print("PORT", server.server_address[1], flush=True)
server.serve_forever()
