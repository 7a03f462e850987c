"""Read a config file: YAML, ${VAR} substitution, defaults merged into cameras, one line per problem."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from streamseg.config.app import AppConfig
from streamseg.errors import ConfigError

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load_config(path: str | Path, *, check_models: bool = True) -> AppConfig:
    """Parse and validate `path`. Raises ConfigError whose lines each name the file and the field path."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror or exc}"]) from None
    return parse_config(text, path, check_models=check_models)


def parse_config(text: str, path: Path, *, check_models: bool = True) -> AppConfig:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: {_yaml_problem(exc)}"]) from None
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: the file must be a YAML mapping with a `cameras:` section"])

    problems: list[str] = []
    raw = _substitute_env(raw, "", problems)
    merged = _merge_defaults(raw, problems)
    if problems:
        raise ConfigError([f"{path}: {p}" for p in problems])
    try:
        context = {"base_dir": path.resolve().parent, "check_models": check_models, "config_path": path.resolve()}
        return AppConfig.model_validate(merged, context=context)
    except ValidationError as exc:
        raise ConfigError([f"{path}: {p}" for p in _pydantic_problems(exc, raw)]) from None


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: YAML syntax error: {problem}"
    return f"YAML syntax error: {problem}"


def _substitute_env(node: Any, where: str, problems: list[str]) -> Any:
    """Replace ${VAR} and ${VAR:-default} in every string value; an unset VAR without default is a problem."""
    if isinstance(node, dict):
        return {k: _substitute_env(v, f"{where}.{k}" if where else str(k), problems) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute_env(v, f"{where}[{i}]", problems) for i, v in enumerate(node)]
    if not isinstance(node, str) or "${" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value is None:
            if default is not None:
                return default
            problems.append(f"{where}: environment variable {name} is not set")
            return ""
        return value

    return _VAR.sub(replace, node)


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` wins; nested mappings are merged key by key."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _merge_defaults(raw: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    defaults = raw.get("defaults") or {}
    cameras = raw.get("cameras")
    if not isinstance(defaults, dict):
        problems.append("defaults: must be a mapping of camera keys")
        return raw
    if not isinstance(cameras, dict):
        if cameras is not None:
            problems.append("cameras: must be a mapping of camera name to camera settings")
        return raw
    merged = dict(raw)
    merged["cameras"] = {}
    for name, camera in cameras.items():
        if camera is None:
            camera = {}
        if not isinstance(camera, dict):
            problems.append(f"cameras.{name}: must be a mapping (source, model, ...)")
            continue
        merged["cameras"][name] = deep_merge(defaults, camera)
    return merged


def _pydantic_problems(exc: ValidationError, raw: dict[str, Any]) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            msg = "unknown key"
        elif kind == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
        # Say where a camera's bad value came from when it was inherited from `defaults`.
        lines.append(f"{where}: {msg}{_inherited(err['loc'], raw)}")
    return lines


def _inherited(loc: tuple, raw: dict[str, Any]) -> str:
    """' (set in defaults.x.y)' when the camera did not set the bad key itself but `defaults` did."""
    if len(loc) < 3 or loc[0] != "cameras":
        return ""
    own = ((raw.get("cameras") or {}).get(loc[1])) or {}
    if _has_path(own, loc[2:]) or not _has_path(raw.get("defaults") or {}, loc[2:]):
        return ""
    return " (set in defaults." + ".".join(str(p) for p in loc[2:]) + ")"


def _has_path(node: Any, parts: tuple) -> bool:
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True
