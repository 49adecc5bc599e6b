"""Validation runs once per document: the limiters' rule classes are built once, so ValidationCache hits."""

from __future__ import annotations

from dataclasses import replace

from strawberry.extensions import ValidationCache

from billing_graphql.graphql.schema import build_schema, schema_for, validation_rules
from billing_graphql.settings import Settings

QUERY = "query CacheProbe { __typename }"
TOO_DEEP = "{ plans { limits { metric { code } } } }"  # depth 3


def _cache_info():
    return ValidationCache(maxsize=512).cached_validate_document.cache_info()


def test_rules_are_built_once_per_schema():
    settings = Settings(max_query_depth=3)
    assert validation_rules(settings) != validation_rules(settings)  # a new schema gets its own classes
    schema = build_schema(settings)
    rules_extension = next(index for index, factory in enumerate(schema.extensions)
                           if hasattr(factory(), "validation_rules"))
    first = schema.extensions[rules_extension]()
    second = schema.extensions[rules_extension]()
    assert first.validation_rules is second.validation_rules  # ... but one schema's requests share them


async def test_the_second_request_of_a_document_is_a_cache_hit():
    schema = build_schema(Settings(max_query_depth=3))
    before = _cache_info()
    for _ in range(3):
        await schema.execute(QUERY)
    after = _cache_info()
    assert after.misses - before.misses == 1
    assert after.hits - before.hits == 2


async def test_limits_still_apply_from_the_cache():
    schema = build_schema(Settings(max_query_depth=2))
    for _ in range(2):  # the second answer comes from the cache and must still refuse
        result = await schema.execute(TOO_DEEP)
        assert result.errors and "exceeds maximum operation depth of 2" in result.errors[0].message


async def test_introspection_ban_is_part_of_the_cached_rules():
    schema = build_schema(Settings(introspection=False))
    for _ in range(2):
        result = await schema.execute("{ __schema { queryType { name } } }")
        assert result.errors and "introspection" in result.errors[0].message.lower()


async def test_apps_share_a_schema_only_where_every_limit_it_reads_agrees():
    """``schema_for`` (what ``create_app`` serves without a schema handed in): built once for settings that
    differ only in what the schema does not read; another value of any limit it reads gets its own."""
    base = Settings(max_query_depth=3)
    assert schema_for(base) is schema_for(replace(base, database_url="sqlite+aiosqlite://", seller_name="Other",
                                                  plan_cache_size=10))
    for change in ({"max_query_depth": 2}, {"max_aliases": base.max_aliases + 1},
                   {"introspection": not base.introspection}, {"max_tokens": base.max_tokens + 1},
                   {"trusted_documents": "all" if base.trusted_documents != "all" else "off"}):
        assert schema_for(replace(base, **change)) is not schema_for(base), change
    # the limit of the schema each app gets is its own, whichever was built first
    deep = await schema_for(base).execute(TOO_DEEP)  # validates, then fails to resolve (no request context)
    assert deep.data == {"plans": None} and not any("depth" in error.message for error in deep.errors)
    result = await schema_for(replace(base, max_query_depth=2)).execute(TOO_DEEP)
    assert result.errors and "exceeds maximum operation depth of 2" in result.errors[0].message
