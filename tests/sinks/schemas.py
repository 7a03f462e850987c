"""The published JSON Schemas (streamseg/sinks/schemas/*.json), as validators."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema

import streamseg

SCHEMAS = Path(streamseg.__file__).parent / "sinks" / "schemas"


@cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate(name: str, payload) -> None:
    validator(name).validate(payload)
