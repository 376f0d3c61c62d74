"""Parsing what clients send, under limits: JSON bodies and JSON form fields, numbers in query parameters.

Every JSON a client sends goes through `loads`: DRF's body parser (settings.REST_FRAMEWORK's default), JSON fields of
serializers (`BoundedJSONField`) and the MONAI Label `params` form field. It refuses, with 400 naming the field:

- nesting deeper than MAX_JSON_DEPTH arrays or objects (Python's parser would recurse until RecursionError, a 500);
- integers longer than MAX_INT_DIGITS digits (Python refuses over 4,300 digits with a ValueError, a 500; anything
  over 64 bits is no id, count or size of ours anyway);
- NaN, Infinity and numbers that overflow to infinity (1e999).

Query parameters that hold coordinates (`seed`) go through `query_numbers`: finite, bounded, the expected count.
"""

from __future__ import annotations

import json
import math

from rest_framework import serializers
from rest_framework.parsers import JSONParser

from annotation.errors import Invalid

MAX_JSON_DEPTH = 32
MAX_INT_DIGITS = 20  # 2**64 has 20 digits
MAX_QUERY_NUMBER = 1e9  # voxel indices, coordinates: far beyond any volume, far below float and int64 trouble


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _constant(text: str):
    raise ValueError(f"{text} is not a number JSON allows")


def depth(value: object) -> int:
    """How deeply arrays and objects nest in value (a scalar: 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads(text: str | bytes, *, field: str | None = None) -> object:
    """Parse JSON a client sent, under this module's limits; Invalid (400) naming field otherwise."""
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except RecursionError as exc:
        raise Invalid(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", field=field) from exc
    except json.JSONDecodeError as exc:
        raise Invalid(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})", field=field) from exc
    except (ValueError, TypeError) as exc:  # the hooks above, bytes that are not UTF-8
        raise Invalid(f"not valid JSON ({str(exc)[:120]})", field=field) from exc
    if depth(value) > MAX_JSON_DEPTH:
        raise Invalid(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", field=field)
    return value


class BoundedJSONParser(JSONParser):
    """DRF's JSON body parser, through `loads` (the default parser of every API view; see settings)."""

    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        return loads(raw) if raw.strip() else {}


class BoundedJSONField(serializers.JSONField):
    """A serializer's JSON field whose text (a multipart form field) is parsed by `loads`."""

    def to_internal_value(self, data):
        if data in ("", b""):
            return None
        if isinstance(data, str | bytes):
            return loads(data, field=self.field_name)
        return super().to_internal_value(data)  # a JSON body's value: its parser (BoundedJSONParser) bounded it


def query_numbers(text: str, *, count: int, field: str) -> list[int]:
    """count comma-separated finite numbers within +-MAX_QUERY_NUMBER, rounded to whole numbers; Invalid (400) naming
    field otherwise."""
    parts = text.split(",") if text else []
    what = f"{count} numbers"
    if len(parts) != count or any(len(part.strip()) > 32 for part in parts):
        raise Invalid(f"give {what} separated by commas", field=field)
    numbers: list[int] = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise Invalid(f"{part.strip()[:32]!r} is not a number; give {what}", field=field) from None
        if not math.isfinite(value) or abs(value) > MAX_QUERY_NUMBER:
            raise Invalid(f"{part.strip()[:32]!r} is not a number within +-{MAX_QUERY_NUMBER:.0e}", field=field)
        numbers.append(round(value))
    return numbers
