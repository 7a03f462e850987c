"""The daemon's HTTP server (standard library `http.server`, one thread per connection).

    /                             status page (static HTML + JavaScript reading the API below)
    /healthz                      200 when every camera streams or ended cleanly, else 503; JSON per camera
    /metrics                      Prometheus text format (the same metrics as `metrics_port`)
    /api/cameras                  JSON: state, fps in and processed, drops, reconnects, latency, counts, events
    /cameras/{name}/snapshot.jpg  the latest frame, annotated
    /cameras/{name}/mjpeg         the annotated frames as they come (multipart/x-mixed-replace), at most live_fps

Everything needs `auth` when it is set, except the page's own static files with token auth (they hold no data;
the page asks for the token). It reads the daemon's cameras on each request, so a camera restarted by a reload
shows at once. Requests are logged at debug level without their query string; credentials never.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streamseg.config.http import HttpConfig
from streamseg.http.auth import Authenticator
from streamseg.http.cameras import InputRate, api_cameras, healthz, live_sink
from streamseg.metrics import CameraCollector

if TYPE_CHECKING:
    from streamseg.pipeline import CameraPipeline
    from streamseg.sinks.live import LiveSink

log = logging.getLogger(__name__)

STATIC = {  # path -> (file in streamseg/http/static, content type)
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/static/style.css": ("style.css", "text/css; charset=utf-8"),
}
CAMERA_PATH = re.compile(r"/cameras/([A-Za-z0-9_-]+)/(snapshot\.jpg|mjpeg)")
BOUNDARY = "streamseg-frame"
MJPEG_IDLE_S = 1.0  # how often an MJPEG stream with no new frame checks whether it should end
CLIENT_TIMEOUT_S = 30.0  # a connection that sends or takes nothing for this long is closed (its thread ends)


class Watched(Protocol):
    """What the server reads of the daemon (streamseg.daemon.Daemon), each time it is asked."""

    cameras: Mapping[str, CameraPipeline]
    failed: Mapping[str, str]
    started: threading.Event  # set once every camera has been started (or has failed to)

    @property
    def hang_timeout(self) -> float: ...

    def redact(self, text: str) -> str: ...


class HttpServer:
    """Serves `watched` on cfg.host:cfg.port from a thread of its own until `close()`. OSError if it cannot listen
    (or read the auth files)."""

    def __init__(self, cfg: HttpConfig, watched: Watched) -> None:
        self.cfg = cfg
        self.watched = watched
        self.auth = Authenticator.from_config(cfg.auth)
        self.registry = CollectorRegistry()
        self.registry.register(CameraCollector(lambda: self.watched.cameras))
        self.rate = InputRate()
        self.closing = threading.Event()
        files = resources.files("streamseg.http") / "static"
        self._static = {path: (files / name).read_bytes() for path, (name, _) in STATIC.items()}
        host = cfg.host.strip("[]")
        self._httpd = (_Server6 if ":" in host else _Server)((host, cfg.port), _handler(self))
        self.host, self.port = self._httpd.server_address[:2]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="http", daemon=True)
        self._thread.start()
        auth = "no auth" if self.auth is None else ("basic auth" if self.auth.basic else "token auth")
        log.info("http: status page on http://%s:%d/ (%s)", _url_host(str(self.host)), self.port, auth)

    @property
    def url(self) -> str:
        return f"http://{_url_host(str(self.host))}:{self.port}"

    def close(self) -> None:
        self.closing.set()  # MJPEG streams end within MJPEG_IDLE_S
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(5)

    # -- what the handler answers ------------------------------------------------------------------
    def static(self, path: str) -> tuple[bytes, str]:
        return self._static[path], STATIC[path][1]

    def healthz(self) -> tuple[bool, bytes]:
        w = self.watched
        ok, body = healthz(dict(w.cameras), dict(w.failed), w.hang_timeout, started=w.started.is_set())
        return ok, self._json(body)

    def cameras_json(self) -> bytes:
        w = self.watched
        return self._json(api_cameras(dict(w.cameras), dict(w.failed), w.hang_timeout, self.rate, self.cfg.live_fps))

    def metrics(self) -> bytes:
        return generate_latest(self.registry)

    def camera(self, name: str) -> CameraPipeline | None:
        return self.watched.cameras.get(name)

    def _json(self, body: Any) -> bytes:
        return json.dumps(self._redacted(body), default=str).encode()

    def _redacted(self, value: Any) -> Any:
        """Every string in `value` without the config's secrets (an error may quote a URL); numbers untouched."""
        if isinstance(value, str):
            return self.watched.redact(value)
        if isinstance(value, dict):
            return {k: self._redacted(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redacted(v) for v in value]
        return value


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # an open MJPEG stream never holds up the daemon's exit

    def handle_error(self, request: object, client_address: tuple) -> None:
        """A connection that broke outside a request (the base class prints a traceback to stderr)."""
        log.debug("http: connection from %s ended with an error", client_address[0], exc_info=True)


class _Server6(_Server):
    address_family = socket.AF_INET6  # host `::1`, `::`


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _handler(server: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        app = server

    return Handler


class _Handler(BaseHTTPRequestHandler):
    app: HttpServer
    server_version = "streamseg"
    protocol_version = "HTTP/1.1"
    timeout = CLIENT_TIMEOUT_S  # socket timeout: an idle keep-alive connection, a viewer that stopped reading

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # the base class writes every request to stderr; see log_request

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("http: %s %s %s", self.command, urlsplit(self.path).path, code)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = unquote(urlsplit(self.path).path)
        auth = self.app.auth
        public = path in STATIC and auth is not None and not auth.basic  # the page asks for the token itself
        if auth is not None and not public and not auth.allowed(self.headers.get("Authorization")):
            challenge = {"WWW-Authenticate": auth.challenge}
            self._send(HTTPStatus.UNAUTHORIZED, b'{"error": "unauthorized"}', extra=challenge)
            return
        try:
            self._route(path)
        except OSError:  # the client went away, or stopped reading (CLIENT_TIMEOUT_S)
            self.close_connection = True

    def _route(self, path: str) -> None:
        app = self.app
        if path in STATIC:
            self._send(HTTPStatus.OK, *app.static(path))
        elif path == "/healthz":
            ok, body = app.healthz()
            self._send(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE, body)
        elif path == "/metrics":
            self._send(HTTPStatus.OK, app.metrics(), CONTENT_TYPE_LATEST)
        elif path == "/api/cameras":
            self._send(HTTPStatus.OK, app.cameras_json())
        elif match := CAMERA_PATH.fullmatch(path):
            name, what = match.groups()
            if app.camera(name) is None:
                self._error(HTTPStatus.NOT_FOUND, f"no camera {name!r} is running")
            elif live_sink(app.camera(name)) is None:
                self._error(HTTPStatus.NOT_FOUND, f"camera {name!r} has no live view (started before http: was set)")
            elif what == "snapshot.jpg":
                self._snapshot(name)
            else:
                self._mjpeg(name)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"not found: {path}")

    def _snapshot(self, name: str) -> None:
        live = live_sink(self.app.camera(name))
        got = live.jpeg() if live is not None else None
        if got is None:
            self._error(HTTPStatus.SERVICE_UNAVAILABLE, f"camera {name!r} has no frame yet")
            return
        self._send(HTTPStatus.OK, got[1], "image/jpeg", extra={"X-Frame": str(got[0])})

    def _mjpeg(self, name: str) -> None:
        """Each new frame as one part, at most live_fps a second, until the client goes, the camera is removed or
        the server closes. A camera restarted by a reload goes on in the same stream."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        interval = 1.0 / self.app.cfg.live_fps
        live: LiveSink | None = None
        seen = 0
        try:
            while not self.app.closing.is_set():
                current = live_sink(self.app.camera(name))
                if current is None:
                    return  # the camera was removed
                if current is not live:  # first time, or the camera restarted: a new sink
                    if live is not None:
                        live.watch(-1)
                    live, seen = current, 0
                    live.watch(+1)
                if live.wait(seen, MJPEG_IDLE_S) <= seen:
                    continue
                started = time.monotonic()
                got = live.jpeg()
                if got is None:
                    continue
                seen, jpeg = got
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n"
                self.wfile.write(head.encode() + jpeg + b"\r\n")
                self.wfile.flush()
                rest = interval - (time.monotonic() - started)
                if rest > 0 and self.app.closing.wait(rest):
                    return
        finally:
            if live is not None:
                live.watch(-1)

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode())

    def _send(
        self, status: HTTPStatus, body: bytes, content_type: str = "application/json", extra: dict | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)
