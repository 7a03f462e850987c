"""`http:` section: one HTTP server for people and machines (status page, health, metrics, live view).

Localhost by default. Bound anywhere else it needs `auth`: a bearer token, or a user and password (HTTP basic
auth), each read from the config (${VAR}) or from a file, as the MQTT password is.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator

from streamseg.config.base import Section, existing_file

LOCAL_HOSTS = ("localhost", "localhost.", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach a server bound to `host` (127.0.0.0/8, ::1, localhost)."""
    if host.lower() in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def _first_line(path: Path) -> str:
    lines = path.read_text(encoding="utf-8").splitlines()
    return lines[0] if lines else ""


class HttpAuthConfig(Section):
    token: str | None = Field(
        None, description="Bearer token (`Authorization: Bearer <token>`); use ${VAR}, never plain text."
    )
    token_file: Path | None = Field(None, description="File whose first line is the bearer token (instead of `token`).")
    username: str | None = Field(None, description="User for HTTP basic auth (with `password` or `password_file`).")
    password: str | None = Field(None, description="Password for HTTP basic auth; use ${VAR}, never plain text.")
    password_file: Path | None = Field(
        None, description="File whose first line is the basic-auth password (instead of `password`)."
    )

    @field_validator("token_file", "password_file")
    @classmethod
    def _exists(cls, path: Path | None, info: ValidationInfo) -> Path | None:
        return existing_file(path, info)

    @model_validator(mode="after")
    def _one_way(self) -> HttpAuthConfig:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set either token or token_file, not both")
        if self.password is not None and self.password_file is not None:
            raise ValueError("set either password or password_file, not both")
        token = self.token is not None or self.token_file is not None
        password = self.password is not None or self.password_file is not None
        if password and self.username is None:
            raise ValueError("password needs username (HTTP basic auth)")
        if self.username is not None and not password:
            raise ValueError("username needs password or password_file (HTTP basic auth)")
        if not token and self.username is None:
            raise ValueError("set token (or token_file), or username and password (or password_file)")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty")
        return self

    def read_token(self) -> str | None:
        """`token`, or the first line of `token_file` (read when the server starts, never logged)."""
        return _first_line(self.token_file) if self.token_file is not None else self.token

    def read_password(self) -> str | None:
        return _first_line(self.password_file) if self.password_file is not None else self.password


class HttpConfig(Section):
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address the server listens on. Anything but a loopback address (127.0.0.1, ::1, localhost) "
        "needs `auth`; 0.0.0.0: every interface.",
    )
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: any free port, logged at start).")
    auth: HttpAuthConfig | None = Field(
        None,
        description="Who may read the server: a bearer token or HTTP basic auth. Required unless `host` is a "
        "loopback address. When set, every answer needs it (`/healthz` too), except, with a token, the status "
        "page's own files: the page asks for the token.",
    )
    live_fps: float = Field(
        10.0,
        gt=0,
        le=60,
        description="Most frames a second a live view (`/cameras/{name}/mjpeg`) sends; frames between are skipped "
        "for the viewer, never for detection.",
    )
    jpeg_quality: int = Field(75, ge=1, le=100, description="JPEG quality of the live view and snapshots.")
    events: int = Field(20, ge=0, le=1000, description="Last track events kept per camera for the status page.")

    @model_validator(mode="after")
    def _auth_off_localhost(self) -> HttpConfig:
        if self.auth is None and not is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} is reachable from other machines: set http.auth (a token or a user and "
                "password), or listen on 127.0.0.1"
            )
        return self
