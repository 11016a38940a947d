"""The configuration reference (docs/configuration.md), generated from the pydantic models.

The models are the single source of what a key means, its type and its default; writing the
reference by hand would let the two drift. ``dagster-monitoring config-reference`` prints it and
a test keeps the committed file equal to it.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterator
from datetime import timedelta
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr

from .config import MonitoringConfig

HEADER = """# Configuration reference

Generated from the pydantic models by `dagster-monitoring config-reference` (do not edit by
hand; `tests/test_config_reference.py` fails when this file and the models disagree). Every key
is optional unless its default says *required*; unknown keys are errors naming their path.
Durations are written `90s`, `15m`, `4h`, `1d` or a number of seconds. Secrets are written
`{env: NAME}` and read from that environment variable; a literal secret is refused.
See [`examples/monitoring.example.yaml`](../examples/monitoring.example.yaml) for a whole file.
"""


def _strip(annotation: Any) -> tuple[Any, bool]:
    """(the annotation without ``| None``, whether None is allowed)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) < len(get_args(annotation)) and len(args) == 1:
            return args[0], True
    return annotation, False


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The models a field holds (itself, a list of them, or a discriminated union of them)."""
    annotation, _ = _strip(annotation)
    if get_origin(annotation) is Annotated:
        return _models(get_args(annotation)[0])
    if get_origin(annotation) in (tuple, list):
        return _models(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        return [m for arg in get_args(annotation) for m in _models(arg)]
    return [annotation] if inspect.isclass(annotation) and issubclass(annotation, BaseModel) else []


def type_name(annotation: Any) -> str:
    annotation, optional = _strip(annotation)
    suffix = " or null" if optional else ""
    origin = get_origin(annotation)
    if origin is Annotated:
        return type_name(get_args(annotation)[0]) + suffix
    if annotation is timedelta:
        return "duration" + suffix
    if annotation is SecretStr:
        return "secret `{env: NAME}`" + suffix
    if inspect.isclass(annotation) and issubclass(annotation, Enum):
        return " \\| ".join(f"`{m.value}`" for m in annotation) + suffix
    if origin is Literal:
        return " \\| ".join(f"`{v}`" for v in get_args(annotation)) + suffix
    if origin in (tuple, list):
        return f"list of {type_name(get_args(annotation)[0])}" + suffix
    if origin is dict:
        key, value = get_args(annotation)
        return f"mapping {type_name(key)} → {type_name(value)}" + suffix
    if origin in (Union, types.UnionType):
        models = _models(annotation)
        if models:
            return "receiver (by `type`)" + suffix
        return " or ".join(type_name(a) for a in get_args(annotation))
    if inspect.isclass(annotation) and issubclass(annotation, BaseModel):
        return "section" + suffix
    return getattr(annotation, "__name__", str(annotation)) + suffix


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def default_text(field: Any) -> str:
    if field.is_required():
        return "*required*"
    value = field.get_default(call_default_factory=True)
    if value is None or value in ((), {}, ""):
        return "—"
    if isinstance(value, BaseModel):
        return "see below"
    return f"`{_yaml(value)}`"


def _yaml(value: Any) -> str:
    """A default as one would write it in the YAML file."""
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, timedelta):
        return _duration(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_yaml(k)}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _doc(model: type[BaseModel]) -> str:
    doc = inspect.getdoc(model) or ""
    if not doc or model.__doc__ is None or doc == inspect.getdoc(BaseModel):
        return ""
    return " ".join(doc.split("\n\n")[0].split())


def _sections(model: type[BaseModel], path: str) -> Iterator[str]:
    title = f"`{path}`" if path else "Top level"
    type_field = model.model_fields.get("type")
    if type_field is not None and get_origin(type_field.annotation) is Literal and path:
        title += f" with `type: {get_args(type_field.annotation)[0]}`"
    lines = [f"## {title}", ""]
    if _doc(model):
        lines += [_doc(model), ""]
    lines += ["| key | type | default | meaning |", "|---|---|---|---|"]
    nested: list[tuple[type[BaseModel], str]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        description = " ".join((field.description or "").split()).replace("|", "\\|")
        lines.append(f"| `{key}` | {type_name(field.annotation)} | {default_text(field)} | {description} |")
        listed = get_origin(_strip(field.annotation)[0]) in (tuple, list)
        for sub in _models(field.annotation):
            nested.append((sub, f"{path + '.' if path else ''}{key}{'[]' if listed else ''}"))
    yield "\n".join(lines) + "\n"
    for sub, sub_path in nested:
        yield from _sections(sub, sub_path)


def config_reference(model: type[BaseModel] = MonitoringConfig) -> str:
    """The whole reference as Markdown."""
    return "\n".join([HEADER, *_sections(model, "")])
