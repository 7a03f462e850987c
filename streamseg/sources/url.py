"""Camera URLs in messages: never show a password, however the camera wants it written."""

from __future__ import annotations

import re
from urllib.parse import unquote

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/+")  # also the typo rtsp:/user:pw@host

# A parameter name that looks like it holds a secret (case-insensitive; over-matching only hides more).
SECRET_NAME = re.compile(r"pass|pwd|token|key|auth|secret|sig|credential|session|(?<![a-z])pw(?![a-z])", re.I)

# `name=` at the start of a query, path or fragment parameter: ?pwd=..., &token=..., /password=..., ;auth=...
_PARAM = re.compile(r"(?<=[/?&;#])([^/?&;#=@]+)=")
# A value runs to the next separator that starts another `name=`, else to the end of the URL: a secret that
# holds `/`, `?`, `#` or `&` unescaped stays hidden whole (at worst the rest of the URL is hidden with it).
_VALUE_END = re.compile(r"[/?&;#][^/?&;#=]+=")
_AUTHORITY_END = re.compile(r"[/?#]")

# Secrets shorter than this are hidden inside URLs but not searched for in free text, where replacing every
# "pw" or "1" would garble the message and protect nothing.
MIN_SECRET_LEN = 4


def redact_url(url: str) -> str:
    """Replace every secret in `url` with ``***``; anything that is not a URL comes back unchanged.

    Hidden: the password of the userinfo (``user:PASSWORD@host``), and the value of every query, path or
    fragment parameter whose name looks like a secret (``?user=admin&pwd=...``, ``/user=admin&password=...``,
    ``;token=...``). Secrets are often written unescaped, so the userinfo runs to the *last* ``@`` once
    the authority holds a ``:`` or an ``@``: a password holding ``/``, ``?``, ``#``, ``@`` or ``:`` is
    hidden whole, at the price of hiding more of the URL in the rare case an ``@`` follows in the query.
    """
    out = url
    for start, end in sorted(_secret_spans(url), reverse=True):
        out = f"{out[:start]}***{out[end:]}"
    return out


def url_secrets(url: str) -> list[str]:
    """The secret strings of `url` (as written, and percent-decoded) to look for in free text."""
    spans = _secret_spans(url)
    scheme = _SCHEME.match(url)
    if scheme is not None:  # also the password as FFmpeg reads it, when that is shorter than the one hidden
        start = scheme.end()
        cut = _authority_end(url, start)
        at, colon = url.rfind("@", start, cut), url.find(":", start, cut)
        if -1 < colon < at - 1:
            spans.append((colon + 1, at))
    found = []
    for start, end in spans:
        found += [url[start:end], unquote(url[start:end])]
    return [s for s in dict.fromkeys(found) if len(s) >= MIN_SECRET_LEN]


def redact_text(text: str, url: str) -> str:
    """`text` (an error from FFmpeg, say) with `url` and every secret in it, in whatever form, hidden."""
    text = text.replace(url, redact_url(url))
    for secret in url_secrets(url):
        text = text.replace(secret, "***")
    return text


def _secret_spans(url: str) -> list[tuple[int, int]]:
    """(start, end) of each secret in `url`, in order, not overlapping."""
    scheme = _SCHEME.match(url)
    if scheme is None:
        return []
    start = scheme.end()
    spans = []
    rest = start  # where the host starts: after the userinfo, if any
    cut = _authority_end(url, start)
    at = url.rfind("@", start)
    if at != -1 and (at < cut or ":" in url[start:cut] or "@" in url[start:cut]):
        rest = at + 1
        colon = url.find(":", start, at)
        if colon != -1 and colon + 1 < at:  # user only, or an empty password: nothing to hide
            spans.append((colon + 1, at))
    for match in _PARAM.finditer(url, rest):
        if spans and match.start() < spans[-1][1]:
            continue  # inside the previous secret
        if not SECRET_NAME.search(match.group(1)):
            continue
        value_start = match.end()
        follow = _VALUE_END.search(url, value_start)
        value_end = follow.start() if follow else len(url)
        if value_end > value_start:
            spans.append((value_start, value_end))
    return spans


def _authority_end(url: str, start: int) -> int:
    """Where FFmpeg's `av_url_split` ends the authority: at the first '/', '?' or '#'."""
    found = _AUTHORITY_END.search(url, start)
    return found.start() if found else len(url)
