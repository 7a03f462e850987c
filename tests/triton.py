"""A real Triton Inference Server (PyTriton's bundled tritonserver, tests/triton_server.py) on free loopback ports.

Use it from a test module:  ``from tests.triton import triton_server  # noqa: F401``

The server runs in its own venv made from the system python by tools/setup-triton.sh (.venv-triton beside the
repo's .venv, or $STREAMSEG_TRITON_PYTHON); the tests that need it skip, saying so, when it is not there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, SHARED
from tests.mqtt_broker import free_port

SCRIPT = Path(__file__).with_name("triton_server.py")
MODEL_NAME = "yolov8n-seg"


def triton_python() -> Path | None:
    env = os.environ.get("STREAMSEG_TRITON_PYTHON")
    python = Path(env) if env else REPO / ".venv-triton" / "bin" / "python"
    if not python.is_file():
        return None
    check = subprocess.run([str(python), "-c", "import pytriton, onnxruntime"], capture_output=True)
    return python if check.returncode == 0 else None


def free_ports(n: int) -> int:
    """A port p with p..p+n-1 all free (gRPC, HTTP, metrics)."""
    for _ in range(50):
        port = free_port()
        if port + n < 65535 and all(_free(port + i) for i in range(1, n)):
            return port
    raise RuntimeError("no run of free ports")


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT leftovers are fine
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class TritonServer:
    """`kill()` and `start()` again on the same port: a server that crashes and comes back."""

    host = "127.0.0.1"

    def __init__(self, python: Path, model: Path, *, name: str = MODEL_NAME, metadata: bool = True) -> None:
        self.python = python
        self.model = model
        self.name = name
        self.metadata = metadata
        self.port = free_ports(3)
        self._proc: subprocess.Popen | None = None
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server object

    @property
    def url(self) -> str:
        return f"grpc://{self.host}:{self.port}"

    def start(self, timeout: float = 90.0) -> None:
        if self._proc is not None:
            return
        ready = Path(tempfile.mkdtemp(prefix="triton-")) / "ready"
        # -P: tests/ is not put on the server's sys.path, where a package of ours could shadow the standard
        # library's (a tests/http/ did: pytriton's client failed on `http.cookiejar`).
        cmd = [str(self.python), "-P", str(SCRIPT), str(self.model), str(self.port), "--name", self.name]
        cmd += ["--ready-file", str(ready)] + ([] if self.metadata else ["--no-metadata"])
        env = {**os.environ, "PYTHONPATH": ""}  # the test venv's packages must not leak into the server's
        # Its own session: kill() takes tritonserver and PyTriton's backend stubs down with the script. Its logs
        # (tritonserver's too) go to a file, so a full pipe never blocks it.
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=self._log, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not ready.exists():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                self._log.seek(0)
                tail = self._log.read().decode(errors="replace")[-3000:]
                raise RuntimeError(f"the Triton server did not start: {tail}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL to the whole group: the server is gone at once, no goodbye to its clients."""
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._proc.pid, signal.SIGKILL)
        self._proc.wait(20)
        self._proc = None
        deadline = time.monotonic() + 20
        while not _free(self.port) and time.monotonic() < deadline:  # the port must be free for a restart
            time.sleep(0.1)


def start_server(model: Path, **kwargs: object) -> TritonServer:
    python = triton_python()
    if python is None:
        pytest.skip(
            "no Triton test server: run tools/setup-triton.sh (a venv with nvidia-pytriton made from /usr/bin/python3) "
            "or set STREAMSEG_TRITON_PYTHON"
        )
    server = TritonServer(python, model, **kwargs)
    server.start()
    return server


@pytest.fixture(scope="module")
def triton_server() -> Iterator[TritonServer]:
    """The fast real model (yolov8n-seg-320-dynamic.onnx) served as `yolov8n-seg`, with its metadata."""
    model = SHARED / "models" / "yolov8n-seg-320-dynamic.onnx"
    if not model.is_file():
        pytest.skip(f"{model} is absent: set STREAMSEG_SHARED to the folder holding models/ and media/")
    server = start_server(model)
    try:
        yield server
    finally:
        server.kill()
