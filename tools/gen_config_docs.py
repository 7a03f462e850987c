"""Write docs/config.md from the config schema, so the documented defaults are the real ones.

python tools/gen_config_docs.py          # rewrite docs/config.md
python tools/gen_config_docs.py --check  # exit 1 if it is out of date (the tests run this)
"""

from __future__ import annotations

import enum
import sys
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from streamseg.config.app import AppConfig
from streamseg.config.loader import MAX_BYTES, MAX_DEPTH, MAX_VALUES

OUT = Path(__file__).resolve().parent.parent / "docs" / "config.md"

HEADER = f"""# Configuration reference

Generated from the schema by `tools/gen_config_docs.py`; do not edit by hand.

One YAML file. `defaults:` is merged into every camera (a camera's own keys win, key by key).
`${{VAR}}` and `${{VAR:-fallback}}` are replaced from the environment in every string value.
Relative paths are resolved against the config file's folder. Unknown keys are errors.
Duplicate keys are errors too; a config file may be at most {MAX_BYTES // 2**20} MiB, nested at most {MAX_DEPTH}
levels, and its YAML aliases may expand to at most {MAX_VALUES} values.
`streamseg validate FILE` checks it all without connecting to anything.
"""


def _models(annotation: object) -> list[type[BaseModel]]:
    """The config sections nested in a field's type (through Optional, dict and list)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models(arg)
    return found


def _type_name(annotation: object) -> str:
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):  # the vocabulary: list the words
        return " \\| ".join(str(m.value) for m in annotation)
    if isinstance(annotation, type):
        return annotation.__name__ if not issubclass(annotation, BaseModel) else "section"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is not None:
        return f"{getattr(origin, '__name__', origin)}[{', '.join(_type_name(a) for a in args)}]"
    return str(annotation)


def _default(field) -> str:  # noqa: ANN001 - pydantic FieldInfo
    if field.default is PydanticUndefined and field.default_factory is None:
        return "**required**"
    value = field.default_factory() if field.default_factory is not None else field.default
    if isinstance(value, BaseModel):
        return "(section)"
    return "null" if value is None else f"`{value}`"


def _section(model: type[BaseModel], prefix: str, out: list[str]) -> None:
    out += [f"\n## `{prefix or '(top level)'}`\n", "| key | type | default | description |", "|---|---|---|---|"]
    nested = []
    for name, field in model.model_fields.items():
        desc = (field.description or "").replace("|", "\\|")
        out.append(f"| `{name}` | {_type_name(field.annotation)} | {_default(field)} | {desc} |")
        for sub in _models(field.annotation):
            child = f"{prefix}.{name}" if prefix else name
            if typing.get_origin(field.annotation) is dict:
                child += ".<name>"
            nested.append((sub, child))
    for sub, child in nested:
        _section(sub, child, out)


def render() -> str:
    out = [HEADER]
    _section(AppConfig, "", out)
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    text = render()
    if "--check" in sys.argv:
        if not OUT.is_file() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python tools/gen_config_docs.py", file=sys.stderr)
            raise SystemExit(1)
    else:
        OUT.write_text(text)
