import pytest

from streamseg.sources.url import redact_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://admin:secret@host/x", "rtsp://admin:***@host/x"),
        ("rtsp://admin:secret@192.168.1.20:554/stream1?ch=1", "rtsp://admin:***@192.168.1.20:554/stream1?ch=1"),
        ("rtsp://admin@host/x", "rtsp://admin@host/x"),
        ("rtsp://host:554/x", "rtsp://host:554/x"),
        ("http://host/cgi?email=a:b@c", "http://host/cgi?email=a:b@c"),  # '@' after the authority
        ("rtsp://admin:p@ss:w0rd!@host/x", "rtsp://admin:***@host/x"),  # unescaped '@' and ':'
        ("rtsp://admin:p%40ss%2Fw@host/x", "rtsp://admin:***@host/x"),  # percent-encoded
        ("rtsp://:secret@host", "rtsp://:***@host"),
        ("rtsp://admin:@host/x", "rtsp://admin:@host/x"),  # empty password: nothing to hide
        ("/videos/front:door@2024.mp4", "/videos/front:door@2024.mp4"),
        ("videos/a.mp4", "videos/a.mp4"),
        (r"C:\videos\a.mp4", r"C:\videos\a.mp4"),
        ("", ""),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected
