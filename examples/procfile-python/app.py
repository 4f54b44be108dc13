"""procfile-python: an app written for Heroku-style platforms, deployed unchanged (see the Procfile)."""
import argparse
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--greeting", default="hello")
args = parser.parse_args()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{args.greeting} (port {args.port}, PORT={os.environ.get('PORT')})\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *a):
        print(f"request {self.command} {self.path}", flush=True)


print(f"procfile-python listening on :{args.port}", flush=True)
HTTPServer(("0.0.0.0", args.port), Handler).serve_forever()
