"""Fetch a model ID's .onnx file from a mirror into the model cache: progress, sha256, atomic, one-line errors.

A mirror is a plain HTTP(S) (or file://) folder holding `<ID>.onnx` files and, optionally, a `SHA256SUMS` file
as `sha256sum *.onnx > SHA256SUMS` writes it. A file is downloaded to `<cache>/<ID>.onnx.<random>.part`, hashed
as it arrives, checked against the expected sha256 (the config's pin, else the mirror's SHA256SUMS) and only
then renamed to `<cache>/<ID>.onnx`: an interrupted or refused download never leaves a file that looks whole.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO

from streamseg.errors import ModelError
from streamseg.sources.url import redact_text, redact_url

log = logging.getLogger(__name__)

CHUNK = 1 << 20
TIMEOUT_S = 30.0  # per connection attempt and per read: a stalled mirror fails instead of hanging the daemon
SUMS_FILE = "SHA256SUMS"


def model_url(mirror: str, model_id: str) -> str:
    return f"{mirror.rstrip('/')}/{model_id}.onnx"


def download_model(
    model_id: str, mirror: str, cache: Path, *, sha256: str | None = None, progress: IO[str] | None = None
) -> Path:
    """`<mirror>/<model_id>.onnx` saved as `<cache>/<model_id>.onnx`, verified; that path.

    sha256: the expected digest (a config pin); None: the mirror's SHA256SUMS entry, unverified (with a warning)
    when the mirror has none. progress: a terminal to draw a progress bar on; None: sys.stderr when it is a
    terminal, else a log line every 25 %.
    """
    url = model_url(mirror, model_id)
    name = f"{model_id}.onnx"
    target = cache / name
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)  # noqa: S310 - the operator's mirror URL
    except urllib.error.HTTPError as exc:
        raise _missing(model_id, url, f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        if isinstance(getattr(exc, "reason", None), FileNotFoundError):  # a file:// mirror without it
            raise _missing(model_id, url, "no such file") from None
        raise _offline(model_id, url, target, exc) from None
    # the model's URL answered, so the network is up: now the checksum list (a slow mirror is not waited on twice)
    expected = (sha256 or "").strip().lower() or _mirror_sha256(mirror, name)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        response.close()
        raise ModelError(f"model {model_id!r}: cannot create the model cache {cache}: {exc.strerror or exc}") from None
    with response:
        total = _length(response)
        fd, part_name = tempfile.mkstemp(dir=cache, prefix=f"{name}.", suffix=".part")
        part = Path(part_name)
        try:
            digest = _copy(response, fd, total, name, url, model_id, target, progress)
            if expected and digest != expected:
                raise ModelError(
                    f"model {model_id!r}: {redact_url(url)} has sha256 {digest}, expected {expected} "
                    f"({'model.sha256' if sha256 else SUMS_FILE}): refused, nothing saved; the mirror's file is "
                    "damaged or not the one expected"
                )
            os.replace(part, target)
        finally:
            part.unlink(missing_ok=True)
    if not expected:
        log.warning(
            "model %s: no sha256 for %s in %s/%s: downloaded without a checksum (pin one with model.sha256)",
            model_id,
            name,
            redact_url(mirror.rstrip("/")),
            SUMS_FILE,
        )
    log.info("model %s: downloaded %s to %s", model_id, redact_url(url), target)
    return target


def _copy(
    response: IO[bytes],
    fd: int,
    total: int | None,
    name: str,
    url: str,
    model_id: str,
    target: Path,
    progress: IO[str] | None,
) -> str:
    """Stream the body into fd (fsynced), with progress; its sha256."""
    sha = hashlib.sha256()
    bar = _Progress(name, total, progress)
    with os.fdopen(fd, "wb") as out:
        while True:
            try:
                chunk = response.read(CHUNK)
            except (OSError, http.client.HTTPException) as exc:
                bar.close()
                raise _offline(model_id, url, target, exc) from None
            if not chunk:
                break
            out.write(chunk)
            sha.update(chunk)
            bar.update(len(chunk))
        bar.close()
        if total is not None and bar.done != total:
            raise ModelError(
                f"model {model_id!r}: {redact_url(url)} ended after {bar.done} of {total} bytes; nothing saved, "
                "try again"
            )
        out.flush()
        os.fsync(out.fileno())
    return sha.hexdigest()


def _mirror_sha256(mirror: str, name: str) -> str:
    """The mirror's SHA256SUMS entry for `name`, or "" when the mirror has no such file or entry."""
    url = f"{mirror.rstrip('/')}/{SUMS_FILE}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:  # noqa: S310
            text = response.read(1 << 20).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError, ValueError):
        return ""  # an unreachable mirror fails on the model file itself, with the message that says what to do
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("*") == name and len(parts[0]) == 64:
            return parts[0].lower()
    return ""


def _missing(model_id: str, url: str, why: str) -> ModelError:
    return ModelError(
        f"model {model_id!r}: the mirror has no {model_id}.onnx ({redact_url(url)}: {why}); check the model ID "
        "and the mirror URL (model.mirror or $STREAMSEG_MODEL_URL)"
    )


def _offline(model_id: str, url: str, target: Path, exc: BaseException) -> ModelError:
    reason = getattr(exc, "reason", None) or exc
    shown = redact_url(url)
    return ModelError(
        f"model {model_id!r}: cannot download {shown} ({redact_text(str(reason), url)}); without network, fetch "
        f"that file on a machine that has it (curl -fLo {target.name} '{shown}') and copy it to {target} "
        f"(or into a folder of $STREAMSEG_MODELS), or set model.path to a local .onnx file"
    )


def _length(response: IO[bytes]) -> int | None:
    value = getattr(response, "headers", {}).get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


class _Progress:
    """A tqdm bar on a terminal; elsewhere (a service's journal) a log line at each quarter."""

    def __init__(self, name: str, total: int | None, stream: IO[str] | None) -> None:
        self.name, self.total, self.done = name, total, 0
        self._logged = 0
        stream = stream if stream is not None else (sys.stderr if sys.stderr.isatty() else None)
        self._bar = None
        if stream is not None:
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, file=stream, leave=True
            )
        else:
            log.info("downloading %s (%s)", name, "unknown size" if total is None else f"{total / 1e6:.1f} MB")

    def update(self, n: int) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self.total:
            quarter = 4 * self.done // self.total
            if quarter > self._logged and quarter < 4:
                self._logged = quarter
                log.info("downloading %s: %d%% of %.1f MB", self.name, 25 * quarter, self.total / 1e6)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
