"""Belt and braces against leaked secrets: every secret the config holds becomes ``***`` in every log line.

`redact_url` hides the secrets it can find in a URL it is given. FFmpeg, PyAV or paho may still echo a URL or
a password in a form of their own (percent-decoded, cut short, inside a longer message); `SecretFilter` knows
the secret values themselves (camera URL passwords and secret parameters, the MQTT password) and replaces each
wherever it appears: in log messages and their arguments, exception text, and the errors the daemon publishes.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from streamseg.sources.url import MIN_SECRET_LEN, SECRET_NAME, url_secrets

if TYPE_CHECKING:
    from streamseg.config.app import AppConfig

MASK = "***"


def config_secrets(config: AppConfig) -> list[str]:
    """Every secret value in `config`: camera and RTSP output URL passwords and secret parameters, secret-named
    FFmpeg options (e.g. an auth token), the MQTT password (also when read from `password_file`), the HTTP token
    and password."""
    found: list[str] = []
    for camera in config.cameras.values():
        found += url_secrets(camera.source.url)
        found += [value for name, value in camera.source.options.items() if SECRET_NAME.search(name)]
        if camera.outputs.rtsp is not None:  # an RTSP server that wants publishers to log in
            found += url_secrets(camera.outputs.rtsp.url)
    mqtt = config.mqtt
    if mqtt is not None:
        with contextlib.suppress(OSError):  # the daemon reports an unreadable password_file itself
            found.append(mqtt.read_password() or "")
    auth = config.http.auth if config.http is not None else None
    if auth is not None:
        with contextlib.suppress(OSError):  # the HTTP server reports an unreadable token_file itself
            found += [auth.read_token() or "", auth.read_password() or ""]
    return found


class SecretFilter(logging.Filter):
    """A logging filter that rewrites each record with every known secret replaced by ``***``.

    `install()` puts it on every handler of the root logger, so records from any logger (streamseg's,
    PyAV's, paho's) pass through it whichever handler writes them; `remove()` takes it off again.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._handlers: list[logging.Handler] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Hide these secrets too (a reloaded config's); the earlier ones stay hidden."""
        self._secrets |= {s for s in secrets if len(s) >= MIN_SECRET_LEN}
        # Longest first, so a secret that contains another is replaced whole.
        unique = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, unique))) if unique else None

    @classmethod
    def from_config(cls, config: AppConfig) -> SecretFilter:
        return cls(config_secrets(config))

    def redact(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def filter(self, record: logging.LogRecord) -> bool:
        if self._pattern is None:
            return True
        message = record.getMessage()
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)  # what handlers would print
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True

    def install(self) -> None:
        for handler in logging.getLogger().handlers:
            if self not in handler.filters:
                handler.addFilter(self)
                self._handlers.append(handler)

    def remove(self) -> None:
        for handler in self._handlers:
            handler.removeFilter(self)
        self._handlers.clear()
