"""What a SIGHUP reload changes: the cameras to start, restart and stop, and the global settings that differ.

Cameras are compared by their resolved settings (after `defaults` are merged in, paths resolved, ${VAR}
substituted), so a change to `defaults` restarts exactly the cameras it reaches. Pure: the daemon acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streamseg.config.app import AppConfig

# Global settings a reload applies at once; every other top-level section that changed (mqtt, ...) takes
# effect at the next restart (the daemon says so in one log line).
APPLIED = ("log_level", "stats_interval", "hang_timeout", "metrics_port", "metrics_host", "homeassistant", "http")
CAMERA_SECTIONS = ("cameras", "defaults")  # compared camera by camera, after merging


@dataclass
class ReloadPlan:
    start: list[str] = field(default_factory=list)  # new (or newly enabled) cameras
    restart: dict[str, list[str]] = field(default_factory=dict)  # camera -> the settings that changed
    stop: list[str] = field(default_factory=list)  # cameras removed or disabled
    keep: list[str] = field(default_factory=list)  # cameras whose settings are the same
    applied: list[str] = field(default_factory=list)  # global settings changed and applied now
    needs_restart: list[str] = field(default_factory=list)  # global settings changed, applied at the next restart

    @property
    def empty(self) -> bool:
        return not (self.start or self.restart or self.stop or self.applied or self.needs_restart)

    def describe(self) -> str:
        """One log line: `restart 'front' (model.conf); start 'garage'; stop 'back'; keep 'side'`."""
        parts = []
        if self.restart:
            parts.append("restart " + ", ".join(f"{n!r} ({', '.join(f)})" for n, f in self.restart.items()))
        for verb, names in (("start", self.start), ("stop", self.stop), ("keep", self.keep)):
            if names:
                parts.append(f"{verb} " + ", ".join(repr(n) for n in names))
        if self.applied:
            parts.append("apply " + ", ".join(self.applied))
        return "; ".join(parts) or "nothing changed"


def plan(old: AppConfig, new: AppConfig) -> ReloadPlan:
    """The difference between the running config and the new one (cameras with `enabled: false` do not run)."""
    result = ReloadPlan()
    running = {n: c for n, c in old.cameras.items() if c.enabled}
    wanted = {n: c for n, c in new.cameras.items() if c.enabled}
    for name, cfg in wanted.items():
        if name not in running:
            result.start.append(name)
        elif cfg != running[name]:
            result.restart[name] = changed_fields(running[name].model_dump(), cfg.model_dump())
        else:
            result.keep.append(name)
    result.stop = [name for name in running if name not in wanted]
    for key in type(new).model_fields:
        if key in CAMERA_SECTIONS or getattr(old, key) == getattr(new, key):
            continue
        (result.applied if key in APPLIED else result.needs_restart).append(key)
    return result


def changed_fields(old: Any, new: Any, where: str = "") -> list[str]:
    """Dotted paths of the settings that differ between two dumped configs (`model.conf`, `zones.door`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(old.keys() | new.keys(), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in old or key not in new:
                found.append(path)
            else:
                found += changed_fields(old[key], new[key], path)
        return found
    return [] if old == new else [where]
