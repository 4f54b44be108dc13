"""python-http: a tiny HTTP server for unikctl's python pack.

Stdlib http.server plus two pinned dependencies: MarkupSafe (a C extension: its shared-library closure goes
into the image) escapes what is echoed back, six provides the py2/py3 URL helpers. One log line per request
on stdout, which reaches `unikctl logs` through the VM's serial console (the pack runs python3 -u).
"""
import logging
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import six
from markupsafe import escape
from six.moves.urllib.parse import parse_qs, urlsplit

log = logging.getLogger("python-http")


class Handler(BaseHTTPRequestHandler):
    server_version = "python-http/1.0"

    def do_GET(self):
        start = time.monotonic()
        url = urlsplit(self.path)
        if url.path == "/exit":
            self._reply(200, "bye\n")
            # serve_forever runs in the main thread: stop it from another one, then main() returns (exit 0)
            threading.Thread(target=self.server.shutdown).start()
            return
        name = parse_qs(url.query).get("name", [""])[0]
        greeting = os.environ.get("GREETING", "hello from a unikctl VM")
        body = "%s (host %s, path %s%s, python %s, six %s)\n" % (
            greeting, socket.gethostname(), escape(url.path), ", name %s" % escape(name) if name else "",
            sys.version.split()[0], six.__version__)
        self._reply(200, body)
        log.info("request method=%s path=%s remote=%s duration=%.1fms", self.command, url.path,
                 self.client_address[0], (time.monotonic() - start) * 1000)

    def _reply(self, status, text):
        data = six.ensure_binary(text)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # the access log is the request line above
        pass


def main():
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    port = int(os.environ.get("PORT", "8080"))
    # the guest kernel has no IPv6: listen on IPv4
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    log.info("python-http listening on :%d", port)
    server.serve_forever()
    server.server_close()
    log.info("python-http stopped")


if __name__ == "__main__":
    main()
