"""The OpenAPI documents' shared parts: the JSON error shape, documented on every operation.

A drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]): every
operation answers its client errors with {"error": {"code", "message", "detail"}}
(core.api.exception_handler), so each gets those statuses with the `Error` component.
"""

from __future__ import annotations

ERROR_COMPONENT = {
    "type": "object",
    "description": "Every API error: a stable `code`, a human `message`, structured `detail` (per field for "
                   "validation errors, else an empty object).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "example": "invalid"},
                "message": {"type": "string"},
                "detail": {"description": "Structured detail, e.g. {field: [messages]}."},
                "request_id": {"type": "string", "description": "The request's id (X-Request-ID), as in the logs."},
            },
            "required": ["code", "message", "detail"],
        },
    },
    "required": ["error"],
}

EVERY_OPERATION = {
    "400": "Invalid parameters or body.",
    "401": "Not authenticated.",
    "403": "Not allowed (permission, read-only key, suspended tenant, quota).",
    "404": "No such object or page.",
    "429": "A quota or rate limit is used up; see Retry-After.",
}
WITH_A_BODY = {
    "413": "The body is larger than API_MAX_BODY_BYTES.",
    "415": "The body is not JSON.",
}
METHODS_WITH_A_BODY = ("post", "put", "patch", "delete")


def document_error_responses(result, generator, request, public):
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    reference = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for item in result.get("paths", {}).values():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            statuses = {**EVERY_OPERATION, **(WITH_A_BODY if method in METHODS_WITH_A_BODY else {})}
            for status, description in statuses.items():
                operation["responses"].setdefault(status, {"description": description, "content": reference})
            for status, response in operation["responses"].items():
                # An error status a view documents itself (e.g. 503 of a load balancer) has the same shape.
                if status[:1] in "45" and "content" not in response:
                    response["content"] = reference
    return result
