"""`http:` config: localhost by default, auth required elsewhere; the server refuses and accepts credentials."""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from streamseg.config import load_config
from streamseg.config.http import HttpConfig, is_loopback
from streamseg.errors import ConfigError
from streamseg.http import HttpServer

BASE = """
defaults:
  model: {path: model.onnx}
cameras:
  front:
    source: {url: video.mp4}
"""
PASSWORD = "pw-never-logged-4711"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "cameras.yaml"
    path.write_text(BASE + text)
    with pytest.raises(ConfigError) as err:
        load_config(path, check_models=False)
    return err.value.problems


def test_localhost_by_default_and_the_contract_port(tmp_path: Path) -> None:
    path = tmp_path / "cameras.yaml"
    path.write_text(BASE + "http: {}\n")
    http = load_config(path, check_models=False).http
    assert http is not None and (http.host, http.port, http.auth) == ("127.0.0.1", 8080, None)
    path.write_text(BASE)
    assert load_config(path, check_models=False).http is None  # omit it and no server runs


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "camera-box.lan"])
def test_any_other_host_needs_auth(tmp_path: Path, host: str) -> None:
    (line,) = problems(tmp_path, f"http: {{host: '{host}'}}\n")
    assert line.startswith(f"{tmp_path / 'cameras.yaml'}: http: ")
    assert f"host {host!r} is reachable from other machines: set http.auth" in line


def test_auth_makes_other_hosts_valid_and_files_are_read(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\nignored\n")
    path = tmp_path / "cameras.yaml"
    path.write_text(BASE + "http: {host: 0.0.0.0, auth: {username: admin, password_file: pw}}\n")
    auth = load_config(path, check_models=False).http.auth
    assert auth.read_password() == PASSWORD and auth.read_token() is None


@pytest.mark.parametrize(
    ("auth", "expected"),
    [
        ("{}", "set token (or token_file), or username and password"),
        ("{username: admin}", "username needs password or password_file"),
        ("{password: x}", "password needs username"),
        ("{token: a, token_file: pw}", "set either token or token_file, not both"),
        ("{token: '  '}", "token must not be empty"),
        ("{token_file: missing.txt}", "http.auth.token_file: file not found: "),
    ],
)
def test_bad_auth_is_one_line_naming_the_field(tmp_path: Path, auth: str, expected: str) -> None:
    (tmp_path / "pw").write_text("x\n")
    (line,) = problems(tmp_path, f"http: {{auth: {auth}}}\n")
    assert "http.auth" in line and expected in line, line


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "example.com"]))


class NoCameras:
    cameras: dict = {}
    failed: dict = {}
    hang_timeout = 30.0

    def __init__(self) -> None:
        self.started = threading.Event()
        self.started.set()

    def redact(self, text: str) -> str:
        return text


def get(url: str, header: str | None = None) -> tuple[int, bytes, dict]:
    request = urllib.request.Request(url, headers={"Authorization": header} if header else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_refused_and_accepted_and_never_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cfg = HttpConfig(host="127.0.0.1", port=0, auth={"username": "admin", "password": PASSWORD})
    server = HttpServer(cfg, NoCameras())
    try:
        for path in ("/", "/healthz", "/api/cameras", "/metrics"):
            status, _, headers = get(server.url + path)
            assert status == 401 and headers["WWW-Authenticate"].startswith('Basic realm="streamseg"'), path
            assert get(server.url + path, basic("admin", "wrong"))[0] == 401
            assert get(server.url + path, "Bearer " + PASSWORD)[0] == 401  # no token is configured
        status, body, _ = get(server.url + "/healthz", basic("admin", PASSWORD))
        assert status == 200 and body == b'{"healthy": true, "cameras": {}}'
        status, body, headers = get(server.url + "/", basic("admin", PASSWORD))
        assert status == 200 and b"<title>streamseg</title>" in body and headers["Content-Type"].startswith("text/html")
    finally:
        server.close()
    assert PASSWORD not in caplog.text and base64.b64encode(f"admin:{PASSWORD}".encode()).decode() not in caplog.text
    assert "basic auth" in caplog.text


def test_token_auth_leaves_only_the_page_itself_open() -> None:
    """The page holds no data and asks for the token; every answer with data needs it."""
    server = HttpServer(HttpConfig(port=0, auth={"token": PASSWORD}), NoCameras())
    try:
        assert get(server.url + "/")[0] == 200 and get(server.url + "/static/app.js")[0] == 200
        status, _, headers = get(server.url + "/api/cameras")
        assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="streamseg"'
        assert get(server.url + "/api/cameras", "Bearer nope")[0] == 401
        assert get(server.url + "/api/cameras", "Bearer " + PASSWORD)[0] == 200
        assert get(server.url + "/cameras/front/snapshot.jpg")[0] == 401
        status, body, _ = get(server.url + "/cameras/front/snapshot.jpg", "Bearer " + PASSWORD)
        assert status == 404 and b"no camera 'front' is running" in body
        assert get(server.url + "/nothing/here", "Bearer " + PASSWORD)[0] == 404
    finally:
        server.close()


def test_ipv6_loopback() -> None:
    server = HttpServer(HttpConfig(host="::1", port=0), NoCameras())
    try:
        assert server.url.startswith("http://[::1]:") and get(server.url + "/healthz")[0] == 200
    finally:
        server.close()


def test_healthz_says_503_while_the_cameras_are_being_started() -> None:
    watched = NoCameras()
    watched.started.clear()
    server = HttpServer(HttpConfig(port=0), watched)
    try:
        status, body, _ = get(server.url + "/healthz")
        assert status == 503 and body == b'{"healthy": false, "cameras": {}, "starting": true}'
        watched.started.set()
        assert get(server.url + "/healthz")[0] == 200
    finally:
        server.close()


def test_a_connection_that_sends_nothing_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each connection has a thread: one that sends nothing (or stops reading) must not keep it forever."""
    from streamseg.http import server as module

    monkeypatch.setattr(module._Handler, "timeout", 0.5)  # CLIENT_TIMEOUT_S is 30 s
    server = HttpServer(HttpConfig(port=0), NoCameras())
    try:
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        t0 = time.monotonic()
        assert idle.recv(1) == b""  # closed by the server
        assert time.monotonic() - t0 < 5
        assert get(server.url + "/healthz")[0] == 200  # and the server goes on
    finally:
        server.close()


def test_a_port_in_use_is_an_oserror_the_daemon_logs() -> None:
    server = HttpServer(HttpConfig(port=0), NoCameras())
    try:
        with pytest.raises(OSError):
            HttpServer(HttpConfig(port=server.port), NoCameras())
    finally:
        server.close()
