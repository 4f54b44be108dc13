"""procfile-gunicorn: a WSGI app started the Heroku way (Procfile: gunicorn app:app --bind 0.0.0.0:$PORT)."""


def app(environ, start_response):
    body = b"hello from gunicorn\n"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
