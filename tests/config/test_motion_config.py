"""The `motion:` section: off by default, and a bad value is one line naming its field."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamseg.config import load_config
from tests.config.test_loader import BASE, problems, write


def test_motion_is_off_unless_asked_for(tmp_path: Path) -> None:
    motion = load_config(write(tmp_path, BASE), check_models=False).cameras["front"].motion
    assert not motion.enabled and not motion.regions and motion.mask == []


def test_a_motion_section_with_a_mask(tmp_path: Path) -> None:
    text = BASE + "    motion: {enabled: true, regions: true, mask: [[[0, 0], [100, 0], [100, 30]]]}\n"
    motion = load_config(write(tmp_path, text), check_models=False).cameras["front"].motion
    assert motion.enabled and motion.regions and motion.mask == [[(0, 0), (100, 0), (100, 30)]]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ("    motion: {regions: true}\n", "cameras.front.motion: regions need motion detection"),
        ("    motion: {threshold: 0}\n", "cameras.front.motion.threshold: Input should be greater than or equal to 1"),
        ("    motion: {min_area: 2}\n", "cameras.front.motion.min_area: Input should be less than or equal to 1"),
        (
            "    motion: {mask: [[[0, 0], [10, 0], [10, 0]]]}\n",
            "cameras.front.motion.mask: each mask polygon needs at least 3 distinct points",
        ),
        (
            "    motion: {mask: [[[0, 0], [10, 0], [10, -5]]]}\n",
            "cameras.front.motion.mask: point [10.0, -5.0] is outside",
        ),
        ("    motion: {enable: true}\n", "cameras.front.motion.enable: unknown key"),
    ],
)
def test_bad_motion_values_name_the_field(tmp_path: Path, patch: str, expected: str) -> None:
    lines = problems(write(tmp_path, BASE + patch))
    assert len(lines) == 1, lines
    assert expected in lines[0], lines[0]
