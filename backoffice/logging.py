"""Log filter that masks secrets in log messages and their arguments."""

import logging
import re

# Django's SafeExceptionReporterFilter pattern, extended with PASSWORD/PASSWD.
SECRET_NAME = re.compile(r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE", re.IGNORECASE)
# key=value, key: value and "key": "value" where the key looks secret.
# The key must end in the secret word ("api_key=", "X-Api-Token:", "db_password="), so ordinary
# text such as "stats-api: 5 of 10" is left alone.
_SECRET_PAIR = re.compile(
    r"""(?P<key>["']?[\w.-]*(?:key|token|secret|passw(?:or)?d|pass|signature|credentials?)["']?\s*[:=]\s*)"""
    r"""(?P<quote>["']?)(?P<value>[^\s"',}&]+)""",
    re.IGNORECASE,
)
# Passwords inside connection URLs: scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<password>[^@\s]+)(?=@)")
MASK = "********"


def mask_text(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _SECRET_PAIR.sub(lambda m: m.group("key") + m.group("quote") + MASK, text)


def mask_value(name: str, value):
    """MASK when the name looks secret, the value unchanged otherwise."""
    if value in (None, "") or not SECRET_NAME.search(name or ""):
        return value
    return MASK


class MaskSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is still logged, unmasked args dropped
            message = str(record.msg)
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True
