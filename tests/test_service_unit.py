"""The shipped systemd unit: a problem only a person can fix (exit 2) is not restarted in a loop."""

from __future__ import annotations

import configparser
from pathlib import Path

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
