import logging

import pytest

from streamseg.redaction import SecretFilter
from streamseg.sources.pyav_source import describe_error
from streamseg.sources.url import redact_url, url_secrets


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
        # reserved characters written unescaped in the password: FFmpeg's authority ends early, the secret does not
        ("rtsp://admin:pa/ss@host:554/x", "rtsp://admin:***@host:554/x"),
        ("rtsp://admin:pa#ss@host/x", "rtsp://admin:***@host/x"),
        ("rtsp://admin:pa?ss@host/x?ch=1", "rtsp://admin:***@host/x?ch=1"),
        ("rtsp://admin:p@ss/w?r#d@host/x", "rtsp://admin:***@host/x"),
        # secrets in the query string, any case, several of them
        ("rtsp://host/live?user=admin&pwd=s3cret&ch=1", "rtsp://host/live?user=admin&pwd=***&ch=1"),
        ("http://host/snap.cgi?usr=a&PassWord=x/y#z&res=1", "http://host/snap.cgi?usr=a&PassWord=***&res=1"),
        (
            "https://h/v.m3u8?X-Amz-Credential=AK/1&X-Amz-Signature=f00",
            "https://h/v.m3u8?X-Amz-Credential=***&X-Amz-Signature=***",
        ),
        (
            "http://h/a?token=t&api_key=k&apikey=k2&auth=a&secret=s&sig=g&session=x&pw=p&key=q&sid=1",
            "http://h/a?token=***&api_key=***&apikey=***&auth=***&secret=***&sig=***&session=***&pw=***&key=***&sid=1",
        ),
        ("rtsp://host/live?pass=a&b&passwd=c", "rtsp://host/live?pass=***&passwd=***"),  # '&' in the value
        # ... in the path, as `name=value` segments (Dahua, Uniview ...) and `;name=value`
        (
            "rtsp://10.0.0.5:554/user=admin&password=s3cret&channel=1&stream=0.sdp?",
            "rtsp://10.0.0.5:554/user=admin&password=***&channel=1&stream=0.sdp?",
        ),
        ("rtsp://host/cam;auth=abc;ch=2/stream", "rtsp://host/cam;auth=***;ch=2/stream"),
        ("rtsp://host/credentials=a/b/c", "rtsp://host/credentials=***"),  # '/' in the value: the rest goes too
        # both at once
        ("rtsp://admin:pw1@host/live?pwd=pw2", "rtsp://admin:***@host/live?pwd=***"),
        ("rtsp://host/live?channel=1&subtype=0", "rtsp://host/live?channel=1&subtype=0"),  # nothing secret
        ("rtsp:/admin:secret@host/x", "rtsp:/admin:***@host/x"),  # a typo'd scheme (FFmpeg reads it as a file)
        ("C:/videos/a:b@c.mp4", "C:/videos/a:b@c.mp4"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


SECRET = "Pa/ss#w?rd@1:x"


@pytest.mark.parametrize(
    "url",
    [
        f"rtsp://admin:{SECRET}@cam.local:554/live",
        f"rtsp://cam.local/live?user=admin&pwd={SECRET}",
        f"rtsp://cam.local/user=admin&password={SECRET}&channel=1&stream=0.sdp?",
        f"http://cam.local/video.mjpg;token={SECRET}",
    ],
)
def test_a_secret_however_written_never_shows(url: str) -> None:
    shown = redact_url(url)
    assert SECRET not in shown and "***" in shown
    for part in ("Pa/ss", "rd@1"):  # not even a piece of it
        assert part not in shown
    assert SECRET in url_secrets(url)


def test_errors_that_echo_the_url_in_their_own_form_are_redacted() -> None:
    url = "rtsp://admin:p%40ss%2Fw0rd@127.0.0.1:1/x?token=tok3n-value"
    exc = OSError(111, "Connection refused to rtsp://admin:p@ss/w0rd@127.0.0.1:1/x?token=tok3n-value")
    line = describe_error(url, exc)
    assert "p@ss/w0rd" not in line and "p%40ss" not in line and "tok3n-value" not in line
    assert line.startswith("rtsp://admin:***@127.0.0.1:1/x?token=***: Connection refused")


def test_secret_filter_cleans_messages_args_and_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    secrets = SecretFilter(url_secrets("rtsp://u:hunter2!@h/x?pwd=q%2Fw%26e") + ["mqtt-pass", "pw"])
    secrets.install()
    try:
        log = logging.getLogger("somelib.rtsp")  # any logger: the filter sits on the handlers
        with caplog.at_level(logging.INFO):
            log.info("opening %s", "rtsp://u:hunter2!@h/x")
            log.warning("auth with q/w&e failed; mqtt-pass rejected")
            try:
                raise ValueError("bad password hunter2!")
            except ValueError:
                log.exception("camera failed")
    finally:
        secrets.remove()
    text = caplog.text
    for secret in ("hunter2!", "q/w&e", "mqtt-pass"):
        assert secret not in text
    assert "rtsp://u:***@h/x" in text and "ValueError: bad password ***" in text
    assert secrets.redact("a pw b") == "a pw b"  # too short to hunt for in free text
