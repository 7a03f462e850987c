"""The shipped systemd unit: a problem only a person can fix (exit 2) is not restarted in a loop; Type=notify with a
watchdog and reload; systemd's own checker accepts it."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "streamseg.service"


def service() -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read_string(UNIT.read_text())
    return parser["Service"]


def test_exit_2_is_not_restarted() -> None:
    unit = service()
    assert unit["Restart"] == "on-failure"
    assert "2" in unit["RestartPreventExitStatus"].split()
    assert unit["ExecStart"].endswith("streamseg run /etc/streamseg/cameras.yaml")
    # RestartPreventExitStatus= covers only the main process: an ExecStartPre= failing with 2 (a `validate`)
    # would be restarted every RestartSec forever (systemd/systemd#11868).
    assert "ExecStartPre" not in unit


def test_notify_watchdog_and_reload() -> None:
    unit = service()
    assert unit["Type"] == "notify"  # READY=1 once the cameras are started (streamseg/systemd.py)
    assert float(unit["WatchdogSec"]) > 0  # WATCHDOG=1 every half of it while no camera is hung
    assert unit["ExecReload"] == "/bin/kill -HUP $MAINPID"  # SIGHUP: the daemon reloads its config
    # the hardening stays
    assert unit["NoNewPrivileges"] == "true" and unit["ProtectSystem"] == "strict" and unit["ProtectHome"] == "true"
    assert unit["User"] == "streamseg" and unit["ReadWritePaths"] == "/var/lib/streamseg"


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """systemd's own checker, on the unit as shipped but for ExecStart= (which must exist): no warning at all
    (it exits 0 even for a line it ignores, so its output must be empty)."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    streamseg = Path(sys.executable).with_name("streamseg")
    text = UNIT.read_text().replace("/opt/streamseg/bin/streamseg", str(streamseg))
    unit = tmp_path / "streamseg.service"
    unit.write_text(text)
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and not proc.stdout.strip() and not proc.stderr.strip(), proc.stdout + proc.stderr
