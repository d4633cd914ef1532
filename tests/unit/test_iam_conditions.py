"""The offline IAM emulator's condition operators, as AWS documents them: ``*`` and ``?`` are the
only wildcards of ``StringLike``; a key the request lacks does not hold; an unknown operator holds
for a Deny and not for an Allow."""

from __future__ import annotations

import pytest

from stepml.local.iam import _conditions_hold


@pytest.mark.parametrize(
    ("pattern", "value", "holds"),
    [
        ("capture/*", "capture/adult/", True),
        ("capture/*", "capture/", True),
        ("capture/*", "raw/adult/", False),
        ("capture/*", "", False),
        ("dt=202?-*", "dt=2026-11-26", True),
        ("dt=202?-*", "dt=20261-11", False),
        ("a.b", "axb", False),  # regex characters are literal
        ("[ab]*", "a-file", False),
        ("[ab]*", "[ab]-file", True),
    ],
)
def test_string_like_has_only_two_wildcards(pattern: str, value: str, holds: bool) -> None:
    assert _conditions_hold({"StringLike": {"s3:prefix": pattern}}, {"s3:prefix": value}) is holds
    assert _conditions_hold({"StringNotLike": {"s3:prefix": pattern}}, {"s3:prefix": value}) is not holds


def test_any_value_of_a_key_and_every_key_and_operator() -> None:
    values = {"s3:prefix": "monitoring/adult/", "aws:SecureTransport": "true"}
    assert _conditions_hold({"StringLike": {"s3:prefix": ["capture/*", "monitoring/*"]}}, values)
    assert not _conditions_hold({"StringLike": {"s3:prefix": "monitoring/*"}, "Bool": {"aws:SecureTransport": "false"}},
                                values)
    # a listing without a prefix carries no s3:prefix: the condition does not hold
    assert not _conditions_hold({"StringLike": {"s3:prefix": "*"}}, {"aws:SecureTransport": "true"})


def test_an_unknown_operator_is_read_the_strict_way() -> None:
    unknown = {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}
    assert _conditions_hold(unknown, {}, unknown_holds=True)  # a Deny applies
    assert not _conditions_hold(unknown, {}, unknown_holds=False)  # an Allow does not
