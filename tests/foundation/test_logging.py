"""Secrets are masked in log lines; ordinary text is not."""

import logging

import pytest

from core.masking import MASK, MaskSecretsFilter, mask_text


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("api_key=abc123def", "abc123def"),
        ('{"password": "hunter2"}', "hunter2"),
        ("Authorization token: tok_live_9", "tok_live_9"),
        ("connecting to postgres://courtside:s3cr3t@db:5432/x", "s3cr3t"),
        ("X-Api-Key: cs_12345678.abcdef", "cs_12345678.abcdef"),
    ],
)
def test_secrets_in_log_text_are_masked(text, hidden):
    masked = mask_text(text)
    assert hidden not in masked and MASK in masked


def test_ordinary_text_is_left_alone():
    assert mask_text("stats-api: 5 of 10 instances passing") == "stats-api: 5 of 10 instances passing"


def test_the_filter_masks_arguments_of_a_record():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "login with password=%s", ("hunter2",), None)
    MaskSecretsFilter().filter(record)
    assert record.getMessage() == f"login with password={MASK}"


def _formatted(msg, args):
    record = logging.LogRecord("x", logging.INFO, __file__, 1, msg, args, None)
    MaskSecretsFilter().filter(record)
    return record.getMessage()


def test_the_filter_masks_secrets_at_any_depth_of_dict_and_list_arguments():
    backups = [{"host": "db.example.invalid", "password": "two words 8812"}]
    line = _formatted("backups %s", (backups,))
    assert "8812" not in line and "db.example.invalid" in line
    nested = {"integrations": {"mirrors": [[{"url": "u", "api_token": "tok with space 7731"}]]}}
    line = _formatted("config %s and %r", (nested, ("x", {"secret": ["a b 4410"]})))
    assert "7731" not in line and "4410" not in line and "'url': 'u'" in line


def test_the_filter_masks_a_mapping_argument_by_its_secret_keys():
    line = _formatted("login %(user)s with %(password)s", ({"user": "coach", "password": "hunter 2 9090"},))
    assert line == f"login coach with {MASK}"


def test_the_filter_masks_a_credentials_dict_whatever_its_keys():
    line = _formatted("connecting with %s", ({"credentials": {"user": "u", "pw": "s3cr3t 6677"}},))
    assert "6677" not in line


def test_quoted_secret_values_are_masked_whole():
    assert "words" not in mask_text('{"password": "several words here"}')
    assert "words" not in mask_text("password='several words here'")


def test_numbers_under_broad_names_still_format():
    assert _formatted("%(api_calls)d calls, %(keys)s", ({"api_calls": 12, "keys": "k-secret"},)) == (
        f"12 calls, {MASK}")
