"""docs/config.md is generated from the schema: it must match the code, so documented defaults are the real ones."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_config_reference_is_up_to_date() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "tools" / "gen_config_docs.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
