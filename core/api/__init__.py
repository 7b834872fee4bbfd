"""One error shape for the whole API: {"error": {"code", "message", "detail"}}."""

from django.conf import settings
from django.core.exceptions import DisallowedHost, PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core.api.parsers import body_too_large_message
from core.errors import DomainError

API_PATH_PREFIX = "/api/"


def error_body(*, code: str, message: str, detail=None) -> dict:
    return {"error": {"code": code, "message": message, "detail": detail if detail is not None else {}}}


def _first_message(detail) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            inner = _first_message(value)
            return inner if key in ("non_field_errors", "__all__") else f"{key}: {inner}"
    if isinstance(detail, list | tuple) and detail:
        return _first_message(detail[0])
    return str(detail)


def exception_handler(exc, context):
    response = _error_response(exc)
    request = context.get("request")
    if response is not None and request is not None:
        # Errors are JSON whatever the view renders otherwise (YAML schema, browsable API).
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
    return response


def _error_response(exc):
    if isinstance(exc, DomainError):
        response = Response(
            error_body(code=exc.code, message=exc.message, detail=exc.detail), status=exc.status
        )
        for header, value in exc.headers.items():
            response[header] = value
        return response
    if isinstance(exc, DjangoValidationError) and getattr(exc, "code", None) == "quota_exceeded":
        return Response(error_body(code="quota_exceeded", message=" ".join(exc.messages)), status=403)
    if isinstance(exc, DjangoValidationError):
        detail = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        exc = exceptions.ValidationError(detail)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    response = drf_exception_handler(exc, {})
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        code, message, detail = "invalid", _first_message(exc.detail), exc.detail
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else "error"
        code = codes if isinstance(codes, str) else "error"
        message = str(getattr(exc, "detail", exc))
        detail = {}
    response.data = error_body(code=code, message=message, detail=detail)
    return response


def is_api_request(request) -> bool:
    return request.path.startswith(API_PATH_PREFIX)


def json_400(request, exception=None):
    """Django's 400s (DisallowedHost, RequestDataTooBig, other SuspiciousOperation) in the JSON shape on API paths."""
    if not is_api_request(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        body = error_body(code="request_too_large", message=body_too_large_message(limit), detail={"limit": limit})
        return JsonResponse(body, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
    if isinstance(exception, DisallowedHost):
        host = request.META.get("HTTP_HOST", "")[:255]
        body = error_body(code="disallowed_host", message=f"No Courtside site is served at {host!r}.",
                          detail={"host": host})
        return JsonResponse(body, status=status.HTTP_400_BAD_REQUEST)
    return JsonResponse(error_body(code="bad_request", message="Bad request."), status=status.HTTP_400_BAD_REQUEST)


def json_404(request, exception=None):
    return JsonResponse(
        error_body(code="not_found", message=f"No page at {request.path}.", detail={"path": request.path}),
        status=status.HTTP_404_NOT_FOUND,
    )


def json_500(request):
    return JsonResponse(
        error_body(code="server_error", message="Internal server error."),
        status=status.HTTP_500_INTERNAL_SERVER_ERROR,
    )
