"""The one place request bodies of every API are bounded: size, JSON depth and text, before json.loads runs.

Python's json recurses once per nesting level (50,000 levels raised RecursionError, a 500), a body is read
whole into memory, and a `\\ud800` escape decodes to a lone surrogate that PostgreSQL and every UTF-8 encoder
refuse later, in whichever view stored it. So the API's only parser refuses these first, with a 4xx in the
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
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
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


def _has_lone_surrogate(data) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


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
        if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(data):
            raise exceptions.ParseError("A string holds a lone surrogate (\\ud800-\\udfff), which is not text.",
                                        code="invalid_unicode")
        return data
