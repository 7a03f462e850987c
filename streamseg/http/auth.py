"""Who may read the HTTP server: a bearer token or HTTP basic auth (RFC 6750, RFC 7617), compared in constant time."""

from __future__ import annotations

import base64
import binascii
import hmac

from streamseg.config.http import HttpAuthConfig


class Authenticator:
    """`allowed(Authorization header)`; `challenge` is the WWW-Authenticate value of a 401."""

    def __init__(self, token: str | None = None, username: str | None = None, password: str | None = None) -> None:
        self._token = token.encode() if token else None
        self._basic = f"{username}:{password}".encode() if username is not None and password is not None else None
        self.basic = self._basic is not None  # browsers prompt for basic auth; a token is typed into the page
        self.challenge = 'Basic realm="streamseg", charset="UTF-8"' if self.basic else 'Bearer realm="streamseg"'

    @classmethod
    def from_config(cls, cfg: HttpAuthConfig | None) -> Authenticator | None:
        """None without `auth` (a localhost server); reads token_file / password_file now (OSError if it cannot)."""
        if cfg is None:
            return None
        return cls(cfg.read_token(), cfg.username, cfg.read_password())

    def allowed(self, header: str | None) -> bool:
        scheme, _, credentials = (header or "").strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and self._token is not None:
            return hmac.compare_digest(credentials.encode(), self._token)
        if scheme.lower() == "basic" and self._basic is not None:
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return False
            return hmac.compare_digest(decoded, self._basic)
        return False
