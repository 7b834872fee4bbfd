"""Authentication failures go to the log (axes and django-otp count them; this says who and where)."""

import logging

from axes.signals import user_locked_out
from django.db import connection
from django.dispatch import receiver
from django_otp.forms import otp_verification_failed

log = logging.getLogger("courtside.security")


@receiver(user_locked_out, dispatch_uid="security.log_lockout")
def log_lockout(sender, request=None, username=None, ip_address=None, **kwargs):
    log.warning("Login locked out: site=%s username=%r address=%s", connection.schema_name, username, ip_address)


@receiver(otp_verification_failed, dispatch_uid="security.log_otp_failure")
def log_otp_failure(sender, user=None, **kwargs):
    log.warning("Two-factor code refused: site=%s username=%r", connection.schema_name,
                getattr(user, "username", None))
