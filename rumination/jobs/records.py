"""Read a file of records, JSONL or YAML (a list, or a list under one key), into validated
pydantic models. Every error names the line (and in YAML the record number) and the field,
in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from rumination.errors import UsageError

M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], where: str, raw: Any, noun: str, needs: str) -> M:
    if not isinstance(raw, dict):
        raise UsageError(f"{where}: a {noun} must be a mapping with {needs}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or noun
        raise UsageError(f"{where}: field `{field}`: {first['msg']}") from None


def _yaml_item_lines(text: str, key: str) -> dict[int, str]:
    """`":LINE"` where each item of the YAML list (top level, or under `key`) starts, by
    item number from 1."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if isinstance(node, yaml.MappingNode):
        node = next((value for name, value in node.value
                     if isinstance(name, yaml.ScalarNode) and name.value == key), None)
    if not isinstance(node, yaml.SequenceNode):
        return {}
    return {i: f":{item.start_mark.line + 1}" for i, item in enumerate(node.value, start=1)}


def load_records(path: Path, model: type[M], *, noun: str, needs: str) -> list[M]:
    """The records of `path` (`.jsonl`/`.ndjson`: one JSON object a line; otherwise YAML, a
    list or a `<noun>s:` list); at least one."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {noun}s file {path}: {exc}") from None
    records: list[M] = []
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except ValueError as exc:
                raise UsageError(f"{path}:{number}: invalid JSON ({exc})") from None
            records.append(_parse(model, f"{path}:{number}", raw, noun, needs))
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise UsageError(f"{path}{line}: invalid YAML") from None
        if isinstance(data, dict) and f"{noun}s" in data:
            data = data[f"{noun}s"]
        if not isinstance(data, list):
            raise UsageError(f"{path}: expected a list of {noun}s (or a `{noun}s:` list)")
        lines = _yaml_item_lines(text, f"{noun}s")
        records = [_parse(model, f"{path}{lines.get(i, '')}: {noun} {i}", raw, noun, needs)
                   for i, raw in enumerate(data, start=1)]
    if not records:
        raise UsageError(f"{path}: no {noun}s")
    return records
