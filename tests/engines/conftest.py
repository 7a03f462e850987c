"""Fixtures of the engine tests: `fake_gpu` installs fakes of tensorrt and pycuda (tests/engines/fake_tensorrt.py)."""

from tests.engines.fake_tensorrt import fake_gpu  # noqa: F401 - the fixture
