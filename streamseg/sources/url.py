"""Camera URLs in messages: never show a password."""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def redact_url(url: str) -> str:
    """Replace the password in `url` with ``***``; anything that is not a URL comes back unchanged.

    The userinfo is split the way FFmpeg's ``av_url_split`` does it (the authority ends at the first
    ``/``, ``?`` or ``#``; the userinfo ends at the last ``@`` in it; the password starts after the
    first ``:``), so what is hidden is exactly what FFmpeg would send as the password, even when it
    holds an unescaped ``@`` or ``:``.
    """
    scheme = _SCHEME.match(url)
    if scheme is None:
        return url
    start = scheme.end()
    end = len(url)
    for sep in "/?#":
        pos = url.find(sep, start)
        if pos != -1:
            end = min(end, pos)
    at = url.rfind("@", start, end)
    if at == -1:
        return url
    colon = url.find(":", start, at)
    if colon == -1 or colon + 1 == at:  # user only, or an empty password
        return url
    return f"{url[: colon + 1]}***{url[at:]}"
