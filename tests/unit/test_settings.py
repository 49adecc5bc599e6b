"""Settings: read from BILLING_* variables; a bad value fails naming the variable."""

from __future__ import annotations

import pytest

from billing_graphql.settings import DEFAULT_DATABASE_URL, Settings, SettingsError


def test_defaults():
    settings = Settings.from_env({})
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.graphiql and settings.introspection
    assert not settings.test_clock
    assert len(settings.jwt_secret) >= 32


def test_values_are_read():
    settings = Settings.from_env({
        "BILLING_DATABASE_URL": "postgresql+asyncpg://u@h/db",
        "BILLING_JWT_SECRET": "s" * 40,
        "BILLING_GRAPHIQL": "off",
        "BILLING_INTROSPECTION": "0",
        "BILLING_TEST_CLOCK": "1",
        "BILLING_MAX_QUERY_DEPTH": "7",
        "BILLING_MAX_ALIASES": "5",
        "BILLING_MAX_TOKENS": "500",
        "BILLING_RATE_LIMIT": "0",
    })
    assert (settings.graphiql, settings.introspection, settings.test_clock) == (False, False, True)
    assert (settings.max_query_depth, settings.max_aliases, settings.max_tokens, settings.rate_limit) == (7, 5, 500, 0)
    assert settings.jwt_secret == "s" * 40


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BILLING_GRAPHIQL", "maybe"), ("BILLING_MAX_QUERY_DEPTH", "deep"), ("BILLING_MAX_QUERY_DEPTH", "1"),
     ("BILLING_RATE_LIMIT", "-1"), ("BILLING_DATABASE_URL", "mysql://x"), ("BILLING_JWT_SECRET", "short"),
     ("BILLING_TEST_CLOCK", "yes please"), ("BILLING_PLAN_CACHE_SIZE", "many"), ("BILLING_PLAN_CACHE_SIZE", "-1"),
     ("BILLING_DB_POOL_SIZE", "0"), ("BILLING_DB_POOL_SIZE", "ten")],
)
def test_bad_value_names_the_variable(variable, value):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({variable: value})
    assert variable in str(caught.value)
    assert "\n" not in str(caught.value)


def test_plan_cache_size_is_read():
    assert Settings.from_env({}).plan_cache_size == 1000
    assert Settings.from_env({"BILLING_PLAN_CACHE_SIZE": "25"}).plan_cache_size == 25
    assert Settings.from_env({"BILLING_PLAN_CACHE_SIZE": "0"}).plan_cache_size == 0


def test_db_pool_size_is_read():
    assert Settings.from_env({}).db_pool_size == 20
    assert Settings.from_env({"BILLING_DB_POOL_SIZE": "8"}).db_pool_size == 8


def test_production_requires_a_secret_and_turns_explorer_off():
    with pytest.raises(SettingsError, match="BILLING_JWT_SECRET"):
        Settings.from_env({"BILLING_PRODUCTION": "1"})
    settings = Settings.from_env({"BILLING_PRODUCTION": "1", "BILLING_JWT_SECRET": "x" * 32})
    assert not settings.graphiql and not settings.introspection


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.graphiql = False  # type: ignore[misc]


def test_default_currency_is_idr_or_a_known_code():
    assert Settings.from_env({}).default_currency == "IDR"
    assert Settings.from_env({"BILLING_DEFAULT_CURRENCY": "usd"}).default_currency == "USD"
    with pytest.raises(SettingsError, match="BILLING_DEFAULT_CURRENCY"):
        Settings.from_env({"BILLING_DEFAULT_CURRENCY": "XYZ"})


STRIPE_KEYS = {"BILLING_STRIPE_SECRET_KEY": "sk_test_abc", "BILLING_STRIPE_PUBLISHABLE_KEY": "pk_test_abc",
               "BILLING_STRIPE_WEBHOOK_SECRET": "whsec_abc"}


def test_stripe_settings_are_read_and_kept_out_of_repr():
    settings = Settings.from_env({**STRIPE_KEYS, "BILLING_STRIPE_API_BASE": "http://127.0.0.1:8420/"})
    assert (settings.stripe_secret_key, settings.stripe_publishable_key, settings.stripe_webhook_secret) == (
        "sk_test_abc", "pk_test_abc", "whsec_abc")
    assert settings.stripe_api_base == "http://127.0.0.1:8420"
    assert "sk_test_abc" not in repr(settings) and "whsec_abc" not in repr(settings)
    unset = Settings.from_env({})
    assert unset.stripe_secret_key is None and unset.stripe_api_base == "https://api.stripe.com"
    assert unset.stripe_js_url == "https://js.stripe.com/v3/"
    local = Settings.from_env({**STRIPE_KEYS, "BILLING_STRIPE_JS_URL": "http://127.0.0.1:8420/js.stripe.com/v3/"})
    assert local.stripe_js_url == "http://127.0.0.1:8420/js.stripe.com/v3/"


@pytest.mark.parametrize(
    ("variable", "value"),
    [("BILLING_STRIPE_SECRET_KEY", "pk_test_abc"), ("BILLING_STRIPE_SECRET_KEY", "sk_test abc"),
     ("BILLING_STRIPE_PUBLISHABLE_KEY", "sk_test_abc"), ("BILLING_STRIPE_WEBHOOK_SECRET", "secret"),
     ("BILLING_STRIPE_API_BASE", "ftp://stripe"), ("BILLING_STRIPE_PUBLISHABLE_KEY", ""),
     ("BILLING_STRIPE_JS_URL", "js.stripe.com/v3/"), ("BILLING_STRIPE_JS_URL", "https://js.stripe.com/v3/' onload")],
)
def test_bad_stripe_values_name_the_variable(variable, value):
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({**STRIPE_KEYS, variable: value})


def test_billing_timezone_is_utc_or_an_iana_zone_named_in_one_line():
    assert Settings.from_env({}).billing_timezone == "UTC"
    jakarta = Settings.from_env({"BILLING_TIMEZONE": "Asia/Jakarta"})
    assert jakarta.billing_timezone == "Asia/Jakarta" and jakarta.timezone.key == "Asia/Jakarta"
    for bad in ("Mars/Olympus", "WIB", "../etc/passwd", "+07:00"):
        with pytest.raises(SettingsError) as caught:
            Settings.from_env({"BILLING_TIMEZONE": bad})
        message = str(caught.value)
        assert message.startswith("BILLING_TIMEZONE ") and "\n" not in message and repr(bad) in message
