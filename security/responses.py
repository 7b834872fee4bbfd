"""What a locked-out login gets (AXES_LOCKOUT_CALLABLE)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from core.api import error_body
from security.lockout import LOCKOUT_CODE, cooloff, lockout_message


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def lockout_response(request, original_response=None, credentials=None):
    """AXES_LOCKOUT_CALLABLE: the JSON error shape on the API, the login form with the reason in the admin."""
    seconds = int(cooloff().total_seconds())
    if _is_api(request):
        body = error_body(code=LOCKOUT_CODE, message=lockout_message(),
                          detail={"retry_after_seconds": seconds, "failure_limit": settings.AXES_FAILURE_LIMIT})
        return JsonResponse(body, status=429, headers={"Retry-After": str(seconds)})
    context = getattr(original_response, "context_data", None) or {}
    form = context.get("form")
    if form is not None and hasattr(original_response, "rendered_content"):
        # The admin's login form, shown again with the lockout as its only error (not "wrong password").
        form.errors.clear()
        form.add_error(None, lockout_message())
        original_response.content = original_response.rendered_content
        original_response.status_code = 429
        original_response["Retry-After"] = str(seconds)
        return original_response
    return HttpResponse(lockout_message(), status=429, content_type="text/plain; charset=utf-8",
                        headers={"Retry-After": str(seconds)})
