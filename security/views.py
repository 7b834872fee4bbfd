"""The admin's MFA pages: login (password, then code), code check, enrolment, the user's own MFA page.

Thin: policy and writes are in security.mfa; these map them to forms and redirects.
The admin sites (backoffice.admin_sites) route to them.
"""

from __future__ import annotations

import django_otp
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect

from security import mfa
from security.forms import EnrolConfirmForm, MfaTokenForm


def _index(site) -> str:
    return reverse(f"{site.name}:index")


def _safe_next(request, url: str, site) -> str:
    if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
        return url
    return _index(site)


class MfaLoginView(LoginView):
    """Django's login; where MFA applies a right password leads to the code (or enrolment) page, not a session."""

    admin_site = None

    def form_valid(self, form):
        user = form.get_user()
        step = mfa.next_login_step(user)
        if step == "done":
            return super().form_valid(form)
        mfa.pending_start(request=self.request, user=user, step=step, next_url=self.get_success_url())
        return HttpResponseRedirect(reverse(f"{self.admin_site.name}:security_mfa_{step}"))


def admin_login(site, request, extra_context=None):
    """AdminSite.login with MfaLoginView (the stock one logs in right after the password)."""
    user = request.user
    if user.is_authenticated and user.is_staff and not mfa.session_satisfies(request):
        # A session from before MFA applied to this user (a policy turned on, a device added elsewhere).
        step = mfa.next_login_step(user)
        if step != "done":
            mfa.pending_start(request=request, user=user, step=step,
                              next_url=request.GET.get(REDIRECT_FIELD_NAME, ""))
            return redirect(f"{site.name}:security_mfa_{step}")
    if request.method == "GET" and site.has_permission(request):
        return HttpResponseRedirect(_index(site))
    context = {**site.each_context(request), "title": "Log in", "subtitle": None,
               "app_path": request.get_full_path(), "username": user.get_username()}
    if REDIRECT_FIELD_NAME not in request.GET and REDIRECT_FIELD_NAME not in request.POST:
        context[REDIRECT_FIELD_NAME] = _index(site)
    context.update(extra_context or {})
    request.current_app = site.name
    return MfaLoginView.as_view(
        extra_context=context, authentication_form=site.login_form or AdminAuthenticationForm,
        template_name=site.login_template or "admin/login.html", admin_site=site,
    )(request)


def _render(site, request, template: str, title: str, **context):
    request.current_app = site.name
    return TemplateResponse(request, template, {**site.each_context(request), "title": title, **context})


def verify_view(site, request):
    """Second step of the login: a code from the authenticator app, or a recovery code (each works once)."""
    user = mfa.pending_user(request, step="verify")
    if user is None:
        messages.warning(request, "Log in again: the login expired before a code was entered.")
        return redirect(f"{site.name}:login")
    form = MfaTokenForm(user, request, data=request.POST or None)
    if request.method == "POST" and form.is_valid():
        next_url = mfa.pending_finish(request=request, user=user, device=user.otp_device)
        return HttpResponseRedirect(_safe_next(request, next_url, site))
    return _render(site, request, "security/verify.html", "Two-factor authentication", form=form,
                   pending_username=user.get_username())


def enrol_view(site, request):
    """Set up an authenticator app: QR code and secret, confirmed by a code; recovery codes are shown once."""
    user = mfa.pending_user(request, step="enrol")
    pending = user is not None
    if not pending:
        if not (request.user.is_authenticated and request.user.is_staff and mfa.session_satisfies(request)):
            return redirect(f"{reverse(f'{site.name}:login')}?{REDIRECT_FIELD_NAME}={request.path}")
        user = request.user
    device = mfa.totp_device_for_enrolment(user=user)
    form = EnrolConfirmForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        result = mfa.totp_enrolment_confirm(user=user, device_id=device.pk, token=form.cleaned_data["otp_token"])
        if result is None:
            form.add_error("otp_token", "That code is not valid: check the app shows this account, and try the "
                                        "current code.")
        else:
            device, codes = result
            if pending:
                next_url = mfa.pending_finish(request=request, user=user, device=device)
            else:
                django_otp.login(request, device)  # this session is now verified by the new device
                next_url = reverse(f"{site.name}:security_mfa")
            return _render(site, request, "security/recovery_codes.html", "Your recovery codes", codes=codes,
                           continue_url=_safe_next(request, next_url, site))
    return _render(site, request, "security/enrol.html", "Set up two-factor authentication", form=form,
                   qr_svg=mfa.totp_qr_svg(device), secret=mfa.totp_secret(device), pending=pending,
                   required=mfa.required_for(user), account=user.get_username())


def mfa_view(site, request):
    """The user's own two-factor page: status, new recovery codes, turning it off where not required."""
    user = request.user
    if request.method == "POST" and request.POST.get("action") == "recovery_codes":
        if not mfa.applies_to(user) or not django_otp.user_has_device(user):
            messages.error(request, "Set up an authenticator app first.")
            return redirect(f"{site.name}:security_mfa")
        codes = mfa.recovery_codes_regenerate(user=user)
        return _render(site, request, "security/recovery_codes.html", "Your recovery codes", codes=codes,
                       continue_url=reverse(f"{site.name}:security_mfa"))
    if request.method == "POST" and request.POST.get("action") == "disable":
        try:
            mfa.mfa_disable(user=user)
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        else:
            messages.success(request, "Two-factor authentication is off for your account.")
        return redirect(f"{site.name}:security_mfa")
    devices = list(django_otp.devices_for_user(user, confirmed=True))
    return _render(site, request, "security/mfa.html", "Two-factor authentication",
                   totp=next((d for d in devices if d.__class__.__name__ == "TOTPDevice"), None),
                   recovery_left=mfa.recovery_codes_left(user=user), required=mfa.required_for(user),
                   verified=bool(getattr(user, "is_verified", lambda: False)()))


def urls(site) -> list:
    """The MFA pages of an admin site; verify and enrol work before the session exists."""
    return [
        path("security/mfa/", site.admin_view(lambda request: mfa_view(site, request)), name="security_mfa"),
        path("security/mfa/verify/", never_cache(csrf_protect(lambda request: verify_view(site, request))),
             name="security_mfa_verify"),
        path("security/mfa/enrol/", never_cache(csrf_protect(lambda request: enrol_view(site, request))),
             name="security_mfa_enrol"),
    ]
