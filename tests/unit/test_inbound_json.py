"""The reader of JSON bodies outside GraphQL (``http.inbound_json``) and the number rule."""

from __future__ import annotations

import pytest

from billing_graphql.domain.numbers import INT64_MAX, number_out_of_range
from billing_graphql.http.inbound_json import MAX_DEPTH, BodyRefused, read_json_body


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_nesting_up_to_the_limit_is_read():
    assert read_json_body(nested(MAX_DEPTH)) is not None
    assert read_json_body(b'{"a":' * (MAX_DEPTH - 1) + b"{}" + b"}" * (MAX_DEPTH - 1)) is not None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1024, 1025, 5000])
def test_deeper_nesting_is_refused(depth):
    with pytest.raises(BodyRefused, match="^The body "):
        read_json_body(nested(depth))


@pytest.mark.parametrize("body", [
    b'"\\ud800"', b'{"\\udfff":1}', b'"\\u0000"', b'{"a":"\\u001b"}', b'["\\u007f"]', b'"\\u0085"',
    b'"\xff"', b"NaN", b"[Infinity]", b"[1e400]", b"[-1e400]", b"[" + b"9" * 5000 + b"]",
    str(INT64_MAX + 1).encode(), str(-INT64_MAX - 1).encode(), b"1e19", b"", b"{", b"not json",
])
def test_hostile_bodies_are_refused_with_a_reason(body):
    with pytest.raises(BodyRefused, match="^The body "):
        read_json_body(body)


def test_ordinary_events_are_read():
    body = b'{"type":"payment.failed","data":{"amount":-9223372036854775807,"rate":0.5,"ok":true,' \
           b'"note":"line 1\\n\\tline 2","none":null,"big":9223372036854775807}}'
    assert read_json_body(body)["data"]["big"] == INT64_MAX


@pytest.mark.parametrize(("value", "out"), [
    (0, False), (INT64_MAX, False), (-INT64_MAX, False), (INT64_MAX + 1, True), (-INT64_MAX - 1, True),
    (1.5, False), (float("inf"), True), (float("nan"), True), (1e19, True),
])
def test_number_rule(value, out):
    assert number_out_of_range(value) is out
