"""DRF authentication that knows about lockouts and MFA (settings REST_FRAMEWORK uses these)."""

from __future__ import annotations

from drf_spectacular.authentication import BasicScheme, SessionScheme
from rest_framework import authentication, exceptions

from security import lockout, mfa


class LoginLockedOut(exceptions.APIException):
    """429 in the API's error shape, with Retry-After: the username + address is locked out."""

    status_code = 429
    default_code = lockout.LOCKOUT_CODE

    def __init__(self):
        super().__init__(lockout.lockout_message())
        self.wait = int(lockout.cooloff().total_seconds())  # DRF sends it as Retry-After


class ThrottledBasicAuthentication(authentication.BasicAuthentication):
    """HTTP Basic through django-axes (every failure counts), refused for accounts that use MFA.

    A password alone must not open what the admin guards with a second factor,
    so a user for whom MFA applies is told to use an API key or a session.
    """

    def authenticate_credentials(self, userid, password, request=None):
        try:
            user, auth = super().authenticate_credentials(userid, password, request)
        except exceptions.AuthenticationFailed:
            # Axes marks the request it was given (DRF's Request) when the username + address is locked out.
            if getattr(request, "axes_locked_out", False):
                raise LoginLockedOut() from None
            raise
        if mfa.applies_to(user):
            raise exceptions.AuthenticationFailed(
                "This account uses two-factor authentication: use an API key, or the admin's session.",
                code="mfa_required",
            )
        return user, auth


class MfaSessionAuthentication(authentication.SessionAuthentication):
    """The admin's session, only once it has passed MFA where MFA applies."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None and not mfa.session_satisfies(request._request, result[0]):
            raise exceptions.AuthenticationFailed("Finish two-factor authentication in the admin first.",
                                                  code="mfa_required")
        return result


class MfaSessionScheme(SessionScheme):
    """OpenAPI: the same cookie authentication as DRF's session."""

    target_class = "security.authentication.MfaSessionAuthentication"


class ThrottledBasicScheme(BasicScheme):
    """OpenAPI: the same HTTP Basic as DRF's."""

    target_class = "security.authentication.ThrottledBasicAuthentication"
