"""A webhook receiver for finX's tests: verifies every delivery with the reference
Python implementation of Standard Webhooks (PyPI `standardwebhooks`), independent of
finX's Rust code, and logs what it saw as JSON lines.

Usage: webhook_receiver.py PORT SECRET_FILE MODE_FILE LOG_FILE

SECRET_FILE holds the endpoint's `whsec_` secret (read per request, so the test can write
it after registering). MODE_FILE holds `accept`, `fail` (answer 500) or `slow` (wait 3 s,
then accept). A delivery whose signature does not verify is answered 400 and logged with
`"verified": false`.
"""

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

PORT, SECRET_FILE, MODE_FILE, LOG_FILE = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
LOCK = threading.Lock()


def read(path, default=""):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except FileNotFoundError:
        return default


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the stdlib's name)
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        mode = read(MODE_FILE, "accept")
        entry = {"webhook_id": self.headers.get("webhook-id"), "mode": mode}
        try:
            event = Webhook(read(SECRET_FILE)).verify(body, dict(self.headers))
            entry.update(verified=True, type=event["type"], data=event["data"])
        except (WebhookVerificationError, ValueError, KeyError) as e:
            entry.update(verified=False, error=str(e))
        with LOCK, open(LOG_FILE, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")
        if not entry["verified"]:
            status = 400
        elif mode == "fail":
            status = 500
        elif mode == "slow":
            time.sleep(3)
            status = 204
        else:
            status = 204
        self.send_response(status)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(PORT)), Handler).serve_forever()
