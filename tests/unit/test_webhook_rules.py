"""Outbound webhook rules: the Standard Webhooks schedule, jitter, outcomes, secrets, event
filters and the addresses a production endpoint may never reach."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook

from billing_graphql.domain.webhooks import (
    MAX_ATTEMPTS,
    RETRY_DELAYS,
    Outcome,
    check_resolved,
    clean_event_filters,
    decide,
    failing_too_long,
    forbidden_address,
    jittered,
    matches,
    new_secret,
    parse_endpoint_url,
    truncate_body,
)

NOW = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


def test_the_schedule_is_standard_webhooks():
    assert [delay.total_seconds() for delay in RETRY_DELAYS] == [0, 5, 300, 1800, 7200, 18000, 36000, 36000]


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_delivered(status):
    assert decide(attempts_in_schedule=3, status_code=status, now=NOW, rand=0.5).outcome is Outcome.DELIVERED


@pytest.mark.parametrize("status", [None, 199, 300, 301, 400, 404, 429, 500, 503])
def test_anything_else_retries_on_the_schedule(status):
    for attempt in range(1, MAX_ATTEMPTS):
        decision = decide(attempts_in_schedule=attempt, status_code=status, now=NOW, rand=0.5)
        assert decision.outcome is Outcome.RETRY
        assert decision.next_attempt_at == NOW + RETRY_DELAYS[attempt]
    assert decide(attempts_in_schedule=MAX_ATTEMPTS, status_code=status, now=NOW, rand=0.5).outcome is Outcome.FAILED


def test_410_is_gone_at_any_attempt():
    assert decide(attempts_in_schedule=1, status_code=410, now=NOW, rand=0.5).outcome is Outcome.GONE


def test_attempts_count_from_one():
    with pytest.raises(ValueError):
        decide(attempts_in_schedule=0, status_code=500, now=NOW, rand=0.5)


@given(st.sampled_from(RETRY_DELAYS), st.floats(min_value=0, max_value=1))
def test_jitter_stays_within_ten_percent(delay, rand):
    moved = jittered(delay, rand)
    assert delay * 0.9 <= moved <= delay * 1.1


def test_jitter_refuses_a_random_outside_zero_one():
    with pytest.raises(ValueError):
        jittered(timedelta(seconds=5), 1.5)


def test_five_days_of_failures():
    assert not failing_too_long(None, NOW)
    assert not failing_too_long(NOW - timedelta(days=5, seconds=-1), NOW)
    assert failing_too_long(NOW - timedelta(days=5), NOW)


def test_a_new_secret_is_whsec_base64_of_32_bytes_and_signs():
    secret = new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    assert new_secret() != secret
    body = '{"type":"invoice.paid"}'
    at = datetime.now(UTC)
    signature = Webhook(secret).sign("msg_1", at, body)
    Webhook(secret).verify(body, {"webhook-id": "msg_1", "webhook-timestamp": str(int(at.timestamp())),
                                  "webhook-signature": signature})


def test_response_bodies_are_cut_to_2kb_as_text():
    assert len(truncate_body(b"x" * 5000)) == 2048
    assert truncate_body(b"ok\x00\xff") == "ok\ufffd\ufffd"


@pytest.mark.parametrize("events, expected", [
    (["invoice.paid"], ["invoice.paid"]),
    (["invoice.*", "invoice.*", "*"], ["invoice.*", "*"]),
])
def test_event_filters(events, expected):
    assert clean_event_filters(events) == expected


@pytest.mark.parametrize("events", [[], ["Invoice.Paid"], ["invoice paid"], ["gateway.*"], ["a." * 60 + "b"],
                                    ["invoice.*.paid"], [f"e{i}" for i in range(51)]])
def test_bad_event_filters(events):
    with pytest.raises(ValueError):
        clean_event_filters(events)


@pytest.mark.parametrize("filters, event, expected", [
    (["*"], "invoice.paid", True),
    (["invoice.*"], "invoice.paid", True),
    (["invoice.*"], "invoices.paid", False),
    (["invoice.paid"], "invoice.payment_failed", False),
    (["*"], "gateway.sandbox.payment.captured", False),
])
def test_matching(filters, event, expected):
    assert matches(filters, event) is expected


@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1",
    "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:a00:1::", "::",
])
def test_forbidden_addresses(address):
    assert forbidden_address(address)


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:2800:220:1:248:1893:25c8:1946"])
def test_public_addresses(address):
    assert not forbidden_address(address)


def test_a_name_resolving_to_one_forbidden_address_is_refused():
    assert check_resolved("example.com", ["93.184.216.34"]) == ["93.184.216.34"]
    with pytest.raises(ValueError, match="resolves to 10.0.0.1"):
        check_resolved("evil.example", ["93.184.216.34", "10.0.0.1"])
    with pytest.raises(ValueError, match="does not resolve"):
        check_resolved("nowhere.invalid", [])


@pytest.mark.parametrize("url", ["http://example.com/x", "ftp://example.com", "https://", "https://a b.com",
                                 "https://u:p@example.com", "https://example.com/#f", "https://example.com:99999/",
                                 "x" * 2001, "https://exa\x00mple.com"])
def test_production_urls_must_be_plain_https(url):
    with pytest.raises(ValueError):
        parse_endpoint_url(url, production=True)


def test_development_urls_may_be_http():
    parsed = parse_endpoint_url("http://127.0.0.1:8080/hooks", production=False)
    assert (parsed.scheme, parsed.host, parsed.port) == ("http", "127.0.0.1", 8080)
    assert parse_endpoint_url("https://example.com/h", production=True).port == 443
