"""BILLING_METRICS_TOKEN and BILLING_LOG_FORMAT."""

from __future__ import annotations

import pytest

from billing_graphql.settings import Settings, SettingsError


def test_metrics_token_and_log_format_are_read():
    settings = Settings.from_env({"BILLING_METRICS_TOKEN": "scrape-me", "BILLING_LOG_FORMAT": "JSON"})
    assert (settings.metrics_token, settings.log_format) == ("scrape-me", "json")
    assert "scrape-me" not in repr(settings)


def test_defaults_are_an_open_endpoint_and_text_logs():
    settings = Settings.from_env({})
    assert (settings.metrics_token, settings.log_format) == (None, "text")


def test_an_unknown_log_format_fails_at_start():
    with pytest.raises(SettingsError, match="BILLING_LOG_FORMAT must be one of text, json"):
        Settings.from_env({"BILLING_LOG_FORMAT": "xml"})
