"""flask-poetry: a Flask app for unikctl's python pack, served by gunicorn (see unik.yaml and gunicorn.conf.py).

This module only defines the WSGI app (`app`): it does not start a server, so the python pack does not run it as
a script; unik.yaml's run.command names gunicorn, a console script of the locked dependencies.
"""
import os
import socket
import sys

from flask import Flask, jsonify, request
from markupsafe import escape

app = Flask(__name__)


@app.get("/")
def index():
    return jsonify(app="flask-poetry", host=socket.gethostname(), python=sys.version.split()[0], pid=os.getpid())


@app.get("/hello/<name>")
def hello(name):
    greeting = os.environ.get("GREETING", "hello")
    return f"{greeting}, {escape(name)}! (user agent {escape(request.headers.get('User-Agent', '-'))})\n"
