"""Read a config file: YAML, ${VAR} substitution, defaults merged into cameras, one line per problem.

The YAML is read defensively, as a file anyone may hand to `streamseg validate`: at most MAX_BYTES, no
duplicate keys (the last one would silently win), and nothing that expands past MAX_VALUES values or MAX_DEPTH
levels once aliases are followed (a 1 KB "billion laughs" file would otherwise take gigabytes when ${VAR}
substitution copies every alias).
"""

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

MAX_BYTES = 2**20  # a config with hundreds of cameras is a few hundred KB
MAX_VALUES = 200_000  # YAML nodes once aliases are expanded
MAX_DEPTH = 64  # nesting levels (a config needs about 8)


def load_config(path: str | Path, *, check_models: bool = True) -> AppConfig:
    """Parse and validate `path`. Raises ConfigError whose lines each name the file and the field path."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)  # never more: the path may be a huge file or a device
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read config file: {exc.strerror or exc}"]) from None
    _check_size(len(data), path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path}: not a UTF-8 text file (byte {exc.start})"]) from None
    return parse_config(text, path, check_models=check_models)


def parse_config(text: str, path: Path, *, check_models: bool = True) -> AppConfig:
    _check_size(len(text.encode("utf-8")), path)
    try:
        raw = _load_yaml(text)
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


def _check_size(size: int, path: Path) -> None:
    if size > MAX_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_BYTES // 2**20} MiB, the limit for a config file"])


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a config may not hold (duplicate keys, alias bombs, deep nesting)."""


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader (the pure-Python one: libyaml's crashes on deep nesting), refusing duplicate keys
    and nesting deeper than MAX_DEPTH while it composes the document."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels", problem_mark=mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], int] = {}  # (tag, text) of each scalar key -> its line
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            if (key.tag, key.value) in first:
                line = first[(key.tag, key.value)] + 1
                raise _Refused(
                    problem=f"duplicate key {key.value!r} (first on line {line})", problem_mark=key.start_mark
                )
            first[(key.tag, key.value)] = key.start_mark.line
        return node


def _load_yaml(text: str) -> Any:
    """yaml.safe_load with the limits above; aliases are measured before anything is built from them."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        values = _expanded_size(node)
        if values > MAX_VALUES:
            raise _Refused(problem=f"YAML aliases expand to more than {MAX_VALUES} values (the limit)")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the document once every alias is replaced by a copy, counted without making the copies.

    Shared (anchored) nodes are counted once per reference, from a memo, so a billion-laughs file costs a
    few microseconds; an alias inside its own anchor (infinite expansion) is refused.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()  # being counted: their children are on the stack
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        children = _children(node)
        if children_done:
            sizes[id(node)] = 1 + sum(sizes[id(child)] for child in children)
            open_nodes.discard(id(node))
        elif id(node) in open_nodes:
            raise _Refused(problem="recursive YAML alias (an anchor used inside itself)", problem_mark=node.start_mark)
        elif id(node) not in sizes:
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children)
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if not isinstance(exc, _Refused):
        problem = f"YAML syntax error: {problem}"
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return problem


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
    copies = _count_values(defaults) * len(cameras)  # each camera gets its own copy: a bomb of a new kind
    if copies > MAX_VALUES:
        problems.append(
            f"defaults: copied into {len(cameras)} cameras, it makes more than {MAX_VALUES} values (the limit)"
        )
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


def _count_values(node: Any) -> int:
    if isinstance(node, dict):
        return 1 + sum(_count_values(v) for v in node.values())
    if isinstance(node, list):
        return 1 + sum(_count_values(v) for v in node)
    return 1


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
