"""Two-factor authentication of the admins (django-otp): who needs it, enrolment, recovery codes, pending logins.

Devices live in every schema, like the users they belong to. MFA applies to a
staff user who has a confirmed device (enrolled by choice) and to one a policy
requires it of: operator superusers where MFA_REQUIRED_FOR_OPERATOR_SUPERUSERS
is on (production), a tenant's staff when the tenant sets the configuration key
`security.require_mfa`.

A password alone never makes a session where MFA applies: the login stores a
short-lived *pending* login in the anonymous session and the user is logged in
(django.contrib.auth.login, with the verifying device) only once a code from
the authenticator or a recovery code is accepted, or, for a user who must
enrol, once the new device is confirmed.
"""

from __future__ import annotations

import base64
import logging
import time

import segno
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django_otp import devices_for_user, user_has_device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from configuration import keys

log = logging.getLogger("courtside.security")

# The tenant-editable key of the tenant policy (read through configuration.keys.security_require_mfa).
REQUIRE_KEY = "security.require_mfa"

RECOVERY_CODE_COUNT = 10
TOTP_NAME = "Authenticator app"
RECOVERY_NAME = "Recovery codes"
PENDING_KEY = "courtside_mfa_pending"
PENDING_SECONDS = 300


# ------------------------------------------------------------------ policy

def _is_public() -> bool:
    return connection.schema_name == "public"


def required_for(user) -> bool:
    """Whether a policy requires MFA of this user on the current site."""
    if not getattr(user, "is_staff", False) or not getattr(user, "pk", None):
        return False
    if _is_public():
        return bool(user.is_superuser and settings.MFA_REQUIRED_FOR_OPERATOR_SUPERUSERS)
    # The tenant's own choice, read in its context (the connection is in its schema).
    return keys.security_require_mfa()


def applies_to(user) -> bool:
    """MFA is asked of this user: a confirmed device, or a policy requiring it."""
    if not getattr(user, "is_authenticated", False) or not getattr(user, "pk", None):
        return False
    return user_has_device(user, confirmed=True) or required_for(user)


def session_satisfies(request, user=None) -> bool:
    """The request's user may act: MFA does not apply, or this session passed it. Cached per request."""
    user = user if user is not None else getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return True
    cached = getattr(request, "_courtside_mfa_ok", None)
    if cached is not None:
        return cached
    verified = getattr(user, "is_verified", None)
    ok = bool(verified and verified()) or not applies_to(user)
    request._courtside_mfa_ok = ok
    return ok


def next_login_step(user) -> str:
    """After a correct password: "done" (log in), "verify" (ask a code) or "enrol" (set up a device first)."""
    if user_has_device(user, confirmed=True):
        return "verify"
    return "enrol" if required_for(user) else "done"


# ------------------------------------------------------------------ pending logins (anonymous session)

def pending_start(*, request, user, step: str, next_url: str) -> None:
    request.session[PENDING_KEY] = {
        "user": user.pk, "schema": connection.schema_name, "step": step, "next": next_url,
        "backend": getattr(user, "backend", "django.contrib.auth.backends.ModelBackend"), "at": time.time(),
    }


def pending_user(request, *, step: str | None = None):
    """The user whose password was right and who still owes a code (or an enrolment), if not expired."""
    pending = request.session.get(PENDING_KEY)
    if not pending or pending.get("schema") != connection.schema_name:
        return None
    if time.time() - pending.get("at", 0) > PENDING_SECONDS or (step and pending.get("step") != step):
        request.session.pop(PENDING_KEY, None)
        return None
    user = get_user_model().objects.filter(pk=pending["user"], is_active=True).first()
    if user is not None:
        user.backend = pending["backend"]
    return user


def pending_finish(*, request, user, device) -> str:
    """Log the user in, verified by the device; returns where to go next."""
    from django.contrib.auth import login

    pending = request.session.pop(PENDING_KEY, {}) or {}
    user.otp_device = device  # django_otp stores it in the new session on user_logged_in
    login(request, user, backend=pending.get("backend") or getattr(user, "backend", None))
    return pending.get("next") or ""


# ------------------------------------------------------------------ devices (services)

def totp_device_for_enrolment(*, user) -> TOTPDevice:
    """The user's unconfirmed authenticator device, made if missing: its secret is shown until confirmed."""
    with transaction.atomic():
        device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
        if device is None:
            device = TOTPDevice(user=user, name=TOTP_NAME, confirmed=False)
            device.full_clean()
            device.save()
    return device


def totp_secret(device: TOTPDevice) -> str:
    """The base32 secret an authenticator app takes by hand, in groups of four."""
    secret = base64.b32encode(device.bin_key).decode()
    return " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))


def totp_qr_svg(device: TOTPDevice) -> str:
    """The otpauth:// URL of the device as an inline SVG QR code (segno, which django-otp's own QR helper uses)."""
    return segno.make(device.config_url, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff")


def totp_enrolment_confirm(*, user, device_id: int, token: str) -> tuple[TOTPDevice, list[str]] | None:
    """Confirm the device with a code from the app; it replaces the user's other authenticator devices and
    comes with a fresh set of recovery codes. None when the code is wrong."""
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(pk=device_id, user=user, confirmed=False).first()
        if device is None or not device.verify_token((token or "").strip().replace(" ", "")):
            return None
        TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = recovery_codes_regenerate(user=user)
    log.info("MFA enrolled: site=%s user=%s", connection.schema_name, user.get_username())
    return device, codes


def recovery_codes_regenerate(*, user) -> list[str]:
    """A new set of single-use recovery codes; the old set stops working. Shown once."""
    with transaction.atomic():
        StaticDevice.objects.filter(user=user).delete()
        device = StaticDevice.objects.create(user=user, name=RECOVERY_NAME, confirmed=True)
        codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
        StaticToken.objects.bulk_create([StaticToken(device=device, token=code) for code in codes])
    return codes


def recovery_codes_left(*, user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def mfa_disable(*, user) -> None:
    """Remove the user's devices (a lost phone); refused where a policy requires MFA of the user."""
    if required_for(user):
        raise ValidationError("Two-factor authentication is required for this account here; it cannot be turned off.")
    with transaction.atomic():
        for device in list(devices_for_user(user, confirmed=None)):
            device.delete()
    log.info("MFA turned off: site=%s user=%s", connection.schema_name, user.get_username())


def device_for_token(user, token: str, *, for_verify: bool = False):
    """Which of the user's devices a code is for: six digits are the app's, anything else a recovery code.

    With for_verify (inside a transaction) the device row is locked, so two
    requests cannot both spend one recovery code or one time step.
    """
    token = (token or "").strip().replace(" ", "")
    model = TOTPDevice if token.isdigit() and len(token) in (6, 8) else StaticDevice
    devices = model.objects.filter(user=user, confirmed=True)
    return (devices.select_for_update() if for_verify else devices).first()
