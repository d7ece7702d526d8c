"""Typed settings: one pydantic model per params section, validated once, refused in one line.

A model gives its keys' types, ranges (``Field(ge=..., le=...)``) and choices (``Literal``); a
field that is a model is a nested group (``image_dl.backbone.name``). No field has a default:
params.yaml is the one place where values live, and a spec written with other keys is refused
rather than filled in. Strict: a boolean is no integer nor a string a number, NaN and infinities
are refused, and a list becomes a tuple (the models are frozen).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, PlainSerializer, ValidationError, WrapValidator
from pydantic.fields import FieldInfo

from moviegenre.core.errors import MovieGenreError

M = TypeVar("M", bound=BaseModel)


class Settings(BaseModel):
    """The base of every settings model, and of the files checked like them (spec.json, ensemble.json)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _as_given(value: Any, check: Callable[[Any], float]) -> Any:
    checked = check(value)
    return value if type(value) is int else checked


# A finite number; an integer stays one (`C: 2` is written 2 in spec.json, as params.yaml says it).
Number = Annotated[float, WrapValidator(_as_given), PlainSerializer(lambda value: value)]


def checked(test: Callable[[Any], Any], must: str) -> AfterValidator:
    """A rule beyond type and range: values for which ``test`` is false are refused as not ``must``."""

    def check(value: Any) -> Any:
        if not test(value):
            raise ValueError(f"must be {must}, not {value!r}")
        return value

    return AfterValidator(check)


def to_dict(settings: BaseModel) -> dict[str, Any]:
    """Plain JSON-ready values (tuples as lists), as written into a model's spec.json."""
    return settings.model_dump(mode="json")


def parse(model: type[M], section: str, values: Any, source: Path | str, entries: str = "key") -> M:
    """``values`` as ``model``: params section ``section`` of ``source`` ("": the whole file, of ``entries``)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise MovieGenreError(f"{source}: {explain(exc, model, section, entries)}") from None


def explain(exc: ValidationError, model: type[BaseModel], section: str = "", entries: str = "key") -> str:
    """The first of ``exc``'s errors in one line, naming its dotted key (a top-level one is an ``entries``)."""
    first = {"extra_forbidden": 0, "missing": 1}  # a misspelt key is both: name the misspelling
    error = min(exc.errors(include_url=False), key=lambda e: first.get(e["type"], 2))
    loc, kind, value, ctx = error["loc"], error["type"], error["input"], error.get("ctx", {})
    loc = loc[:-2] if loc[-1:] == ("[key]",) else loc  # a mapping's key: name the mapping
    key = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in (section, *loc) if part != "")
    key, what = key.lstrip("."), entries if len(loc) == 1 and not section else "key"
    if kind == "extra_forbidden":
        parent = _walk(model, loc[:-1])[1]
        return f"unknown {what} '{key}'" + (f" (known {what}s: {', '.join(parent.model_fields)})" if parent else "")
    if kind == "missing":
        return f"missing {what} '{key}'"
    if not loc and kind == "value_error":
        return str(ctx["error"])  # a rule across its fields: the message names them
    if not loc:
        return f"section '{section}' must be a mapping of keys" if section else "not a mapping of keys"
    return f"'{key}' {_must(kind, value, ctx, error['msg'], _walk(model, loc)[0])}"


_TYPES = {"int_type": "an integer", "float_type": "a number", "bool_type": "true or false", "string_type": "a string"}
_TYPES |= {"tuple_type": "a list", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping of keys"}
_BOUNDS = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}
_SIGNS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def _must(kind: str, value: Any, ctx: dict[str, Any], msg: str, field: FieldInfo | None) -> str:
    span = _span(field.metadata if field else [])
    shown = "null" if value is None else "a boolean" if isinstance(value, bool) else f"{type(value).__name__} {value!r}"
    if kind == "value_error":
        return str(ctx["error"])
    if kind == "finite_number":
        return f"must be a finite number, not {value!r}"
    if kind in _BOUNDS:  # a field's range, or (an item of a list or mapping) the bound it crossed
        bound = f"in {span}" if field else f"{_SIGNS[_BOUNDS[kind]]} {ctx[_BOUNDS[kind]]}"
        return f"must be {bound}, not {value!r}"
    if kind in ("too_short", "string_too_short") and ctx.get("min_length") == 1:
        return "must not be empty"
    if kind == "literal_error":
        return f"must be {ctx['expected']}, not {'null' if value is None else repr(value)}"
    if kind in _TYPES:
        ranged = f" in {span}" if kind in ("int_type", "float_type") and span != "[-inf, inf]" else ""
        return f"must be {_TYPES[kind]}{ranged}, not {shown}"
    return f"{msg.replace('Input should be', 'must be')}, not {shown}"


def _walk(model: Any, loc: tuple[int | str, ...]) -> tuple[FieldInfo | None, Any]:
    """The field at ``loc`` inside ``model``, and its model if it is one (None where ``loc`` leaves the models)."""
    field = None
    for part in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None, None
        field, model = model.model_fields[part], model.model_fields[part].annotation
    return field, model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _span(meta: list[Any]) -> str:
    """A field's range as an interval: [1, 5000], (0, inf]."""
    bound = {name: getattr(m, name) for m in meta for name in _SIGNS if hasattr(m, name)}  # annotated_types.Ge...
    low = f"[{bound['ge']}" if "ge" in bound else f"({bound['gt']}" if "gt" in bound else "[-inf"
    high = f"{bound['le']}]" if "le" in bound else f"{bound['lt']})" if "lt" in bound else "inf]"
    return f"{low}, {high}"
