"""The judging web app (Flask) and its server.

Routes (everything else is 404; there is no directory listing and no file path in any URL):

    GET  /                               the page (static/index.html)
    GET  /static/judge.js|judge.css      its script and style
    GET  /api/config                     question, target, crop size, study name
    GET  /api/trials?rater=NAME          the rater's pending trials (issued on demand)
    POST /api/vote                       {trial_id, rater, image, crop, choice, response_ms}
    GET  /api/trial/<id>/<side>.png      a crop of a manifest image; side: left, right, reference

Security: loopback binds only, unless a token is given (then every request needs it: the page
link ``/?token=T`` sets an HttpOnly, SameSite=Strict cookie; scripts may send
``Authorization: Bearer T``). On loopback the Host header must be a loopback name (no DNS
rebinding), and votes must be ``application/json`` from the page's own origin (no cross-site
form posts). Malformed votes get 400 and store nothing; a rater faster than the rate limit gets
429.
"""
from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
from importlib import resources
from urllib.parse import urlsplit

from optiqa.core.errors import ConfigError
from optiqa.judge.service import JudgeOptions, JudgingService, Rejected

STATIC = {"judge.js": "text/javascript", "judge.css": "text/css"}
COOKIE = "optiqa_judge"
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
MIN_TOKEN_LENGTH = 12
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a bind that anyone on the network could reach without a token."""
    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"token too short: use at least {MIN_TOKEN_LENGTH} characters",
                          option="token")
    if not is_loopback(host) and not token:
        raise ConfigError(f"refusing to serve on {host}, which is not a loopback address, "
                          f"without a token", option="token")


def _host_name(header: str) -> str:
    return (urlsplit(f"//{header}").hostname or "").lower()


def _read_static() -> dict[str, bytes]:
    folder = resources.files("optiqa.judge") / "static"
    return {name: (folder / name).read_bytes() for name in [*STATIC, "index.html"]}


def create_app(service: JudgingService, token: str | None = None,
               loopback_only: bool = True):
    """The Flask app over ``service``; ``loopback_only`` checks the Host header."""
    from flask import Flask, Response, jsonify, redirect, request

    app = Flask("optiqa.judge", static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = 8 * 1024
    files = _read_static()

    def authorised() -> bool:
        if token is None:
            return True
        given = request.cookies.get(COOKIE, "")
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            given = auth[len("Bearer "):]
        return hmac.compare_digest(given.encode(), token.encode())

    @app.before_request
    def guard():
        if loopback_only and _host_name(request.headers.get("Host", "")) not in LOOPBACK_NAMES:
            return Response("bad Host header\n", 400, mimetype="text/plain")
        if token is not None and request.path == "/" and "token" in request.args:
            if hmac.compare_digest(request.args["token"].encode(), token.encode()):
                response = redirect("/", 303)
                response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
                return response
        if not authorised():
            return Response("a token is required: open the link the server printed\n", 401,
                            mimetype="text/plain")
        if request.method == "POST":
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != request.headers.get("Host"):
                return jsonify(error="cross-origin request"), 403

    @app.after_request
    def headers(response):
        # the path without its query string: a ``?token=`` must never reach a log
        REQUEST_LOG.info("%s %s %s %d", request.remote_addr, request.method, request.path,
                         response.status_code)
        response.headers.update(SECURITY_HEADERS)
        if request.path.startswith("/api/") and response.mimetype == "application/json":
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(Rejected)
    def rejected(e: Rejected):
        response = jsonify(error=str(e))
        response.status_code = e.status
        if e.retry_after:
            response.headers["Retry-After"] = str(max(1, round(e.retry_after)))
        return response

    @app.errorhandler(404)
    def not_found(_):
        return Response("not found\n", 404, mimetype="text/plain")

    @app.errorhandler(400)
    @app.errorhandler(405)
    @app.errorhandler(413)
    def bad_request(e):
        return jsonify(error=e.name.lower()), e.code

    @app.get("/")
    def index():
        return Response(files["index.html"], mimetype="text/html")

    @app.get("/static/<name>")
    def static_file(name):
        if name not in STATIC:
            return not_found(None)
        return Response(files[name], mimetype=STATIC[name])

    @app.get("/api/config")
    def config():
        o = service.options
        return jsonify(study=service.images.study, question=o.question,
                       target=o.trials_per_rater, crop_size=o.crop_size,
                       runs=len(service.images.runs))

    @app.get("/api/trials")
    def trials():
        rater = request.args.get("rater", "")
        pending = service.trials(rater)
        return jsonify(rater=rater.strip(), progress=service.progress(rater.strip()),
                       trials=[service.trial_json(t) for t in pending])

    @app.post("/api/vote")
    def vote():
        if not request.is_json:
            raise Rejected(400, "send the vote as application/json")
        payload = request.get_json(silent=True)
        stored = service.vote(payload)
        rater = payload["rater"].strip()
        return jsonify(stored=stored, duplicate=not stored, progress=service.progress(rater),
                       trials=[service.trial_json(t) for t in service.trials(rater)])

    @app.get("/api/trial/<trial_id>/<side>.png")
    def crop(trial_id, side):
        data = service.crop_png(trial_id, side)
        if data is None:
            return not_found(None)
        response = Response(data, mimetype="image/png")
        response.headers["Cache-Control"] = "private, max-age=86400, immutable"
        return response

    return app


class JudgeServer:
    """The app on a threaded WSGI server; ``port=0`` picks a free port (tests).

    ``start()`` runs it in a background thread, ``serve_forever()`` in this one; ``stop()``
    shuts it down and closes the store.
    """

    def __init__(self, study_dir, host: str = "127.0.0.1", port: int = 8765,
                 token: str | None = None, options: JudgeOptions | None = None):
        from werkzeug.serving import make_server

        check_bind(host, token)
        self.service = JudgingService(study_dir, options)
        try:
            self.app = create_app(self.service, token=token, loopback_only=is_loopback(host))
            self._server = make_server(host, port, self.app, threaded=True)
        except BaseException:
            self.service.close()
            raise
        self.host, self.token = host, token
        self.port = self._server.server_port
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def page_url(self) -> str:
        """The link to give raters (carries the token, if any)."""
        return self.url + (f"?token={self.token}" if self.token else "")

    def serve_forever(self) -> None:
        try:
            self._server.serve_forever()
        finally:
            self.service.close()

    def start(self) -> "JudgeServer":
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="optiqa-judge")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.service.close()

    def __enter__(self) -> "JudgeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


REQUEST_LOG = logging.getLogger("optiqa.judge.requests")


def quiet_request_log(verbose: bool = False) -> None:
    """Werkzeug logs every request at INFO, query string (a token) included; keep that for
    ``--verbose`` only. :data:`REQUEST_LOG` logs each request without its query string."""
    logging.getLogger("werkzeug").setLevel(logging.INFO if verbose else logging.WARNING)


def log_requests(stream, enabled: bool = True) -> None:
    """One line per request (time, client, method, path, status) on ``stream``."""
    for handler in list(REQUEST_LOG.handlers):
        REQUEST_LOG.removeHandler(handler)
    REQUEST_LOG.propagate = False
    REQUEST_LOG.setLevel(logging.INFO if enabled else logging.WARNING)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    REQUEST_LOG.addHandler(handler)
