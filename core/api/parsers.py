"""The one place request bodies of every API are bounded: size, JSON depth and text, before json.loads runs.

Python's json recurses once per nesting level (50,000 levels raised RecursionError, a 500), a body is read
whole into memory, a `\\ud800` escape decodes to a lone surrogate that PostgreSQL and every UTF-8 encoder
refuse later, in whichever view stored it, and a `\\u0000` to a NUL that no PostgreSQL text or jsonb holds.
So the API's only parser refuses these first, with a 4xx in the
JSON error shape. The limits are settings: API_MAX_BODY_BYTES and API_JSON_MAX_DEPTH.
"""

from __future__ import annotations

import itertools
import json
import re

from django.conf import settings
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.utils.json import strict_constant

# A JSON string literal (unrolled loop: no backtracking blow-up on long strings).
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = re.compile(r"[^\[\]{}]+")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


def body_too_large_message(limit: int) -> str:
    return f"The request body is larger than {limit} bytes."


def json_depth(text: str) -> int:
    """How deeply the JSON text nests arrays and objects, counted without recursion (strings skipped)."""
    brackets = _NOT_A_BRACKET.sub("", _STRING.sub("", text))
    return max(itertools.accumulate(_DEPTH_STEP[bracket] for bracket in brackets), default=0)


def _strings(data):
    """Every key and string value of parsed JSON, without recursion (the depth is bounded already)."""
    pending = [data]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def refuse_unstorable_text(data) -> None:
    """A 400 for a NUL or a lone surrogate in any string: PostgreSQL stores neither."""
    for text in _strings(data):
        if "\x00" in text:
            raise exceptions.ParseError("A string holds a NUL character (\\u0000), which PostgreSQL cannot store.",
                                        code="nul_character")
        if _LONE_SURROGATE.search(text):
            raise exceptions.ParseError("A string holds a lone surrogate (\\ud800-\\udfff), which is not text.",
                                        code="invalid_unicode")


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser behind three bounds: body size, nesting depth, no lone surrogate."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        limit = settings.API_MAX_BODY_BYTES
        request = parser_context.get("request")
        declared = request.META.get("CONTENT_LENGTH") if request is not None else None
        if declared and str(declared).isdigit() and int(declared) > limit:
            raise RequestTooLarge(body_too_large_message(limit))  # refused unread
        raw = stream.read(limit + 1) if stream is not None else b""
        if len(raw) > limit:
            raise RequestTooLarge(body_too_large_message(limit))
        try:
            text = raw.decode(parser_context.get("encoding") or settings.DEFAULT_CHARSET)
        except UnicodeDecodeError as error:
            raise exceptions.ParseError(f"The body is not valid UTF-8: {error.reason}.",
                                        code="invalid_unicode") from None
        max_depth = settings.API_JSON_MAX_DEPTH
        if json_depth(text) > max_depth:
            raise exceptions.ParseError(f"JSON nested deeper than {max_depth} levels.", code="json_too_deep")
        try:
            data = json.loads(text, parse_constant=strict_constant if self.strict else None)
        except ValueError as error:
            raise exceptions.ParseError(f"JSON parse error - {error}") from None
        if "\\u" in text:  # only an escape can put a NUL or a lone surrogate into strict JSON
            refuse_unstorable_text(data)
        return data
