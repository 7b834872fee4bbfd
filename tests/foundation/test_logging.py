"""Secrets are masked in log lines; ordinary text is not."""

import logging

import pytest

from backoffice.logging import MASK, MaskSecretsFilter, mask_text


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
