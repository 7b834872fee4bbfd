"""Log filter that masks secrets in log messages and their arguments, at any depth."""

import logging
import re

# Django's SafeExceptionReporterFilter pattern, extended with PASSWORD/PASSWD and CREDENTIAL.
SECRET_NAME = re.compile(r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|CREDENTIAL", re.IGNORECASE)
# key=value, key: value and "key": "value" where the key looks secret. A quoted value is masked up
# to its closing quote (spaces included); a bare one up to the next space or separator.
# The key must end in the secret word ("api_key=", "X-Api-Token:", "db_password="), so ordinary
# text such as "stats-api: 5 of 10" is left alone.
_SECRET_PAIR = re.compile(
    r"""(?P<key>["']?[\w.-]*(?:key|token|secret|passw(?:or)?d|pass|signature|credentials?)["']?\s*[:=]\s*)"""
    r"""(?:(?P<quote>["'])(?P<quoted>(?:\\.|(?!(?P=quote)).)*)(?P=quote)|(?P<value>[^\s"',}&]+))""",
    re.IGNORECASE,
)
# Passwords inside connection URLs: scheme://user:password@host
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<password>[^@\s]+)(?=@)")
MASK = "********"
# Arguments are walked this deep; anything deeper (or a structure that contains itself) is cut.
MAX_DEPTH = 20


def _pair(match: re.Match) -> str:
    quote = match.group("quote")
    return match.group("key") + (f"{quote}{MASK}{quote}" if quote else MASK)


def mask_text(text: str) -> str:
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _SECRET_PAIR.sub(_pair, text)


def mask_value(name: str, value):
    """MASK when the name looks secret, the value unchanged otherwise."""
    if value in (None, "") or not SECRET_NAME.search(name or ""):
        return value
    return MASK


def mask_structure(value, name: str = "", _depth: int = 0):
    """A copy of dicts, lists and tuples with every value under a secret-looking key masked, at any depth.

    Numbers and booleans are kept: the pattern is broad (it matches "api_calls",
    "keys"), and "%(api_calls)d" must still format.
    """
    if (name and SECRET_NAME.search(name) and value not in (None, "", (), [], {})
            and not isinstance(value, bool | int | float)):
        return MASK
    if _depth >= MAX_DEPTH:
        return "..." if isinstance(value, dict | list | tuple) else value
    if isinstance(value, dict):
        return {key: mask_structure(item, str(key), _depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        items = [mask_structure(item, "", _depth + 1) for item in value]
        return tuple(items) if isinstance(value, tuple) else items
    return value


class MaskSecretsFilter(logging.Filter):
    """Masks dict and list arguments by their keys before formatting, then the formatted text by pattern."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            if isinstance(record.args, dict):
                record.args = mask_structure(record.args)
            elif record.args:
                record.args = tuple(mask_structure(arg) for arg in record.args)
            message = record.getMessage()
        except Exception:  # a malformed record is still logged, unmasked args dropped
            message = str(record.msg)
        masked = mask_text(message)
        if masked != message or record.args:
            record.msg, record.args = masked, None
        return True
