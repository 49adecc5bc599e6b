"""The one rule for day ranges a caller asks for (exports, analytics)."""

from __future__ import annotations

from datetime import date

import pytest

from billing_graphql.domain.day_range import check_day_range
from billing_graphql.domain.errors import BillingError, BillingErrorCode


@pytest.mark.parametrize(("first", "last"), [
    (date(2026, 1, 1), date(2026, 1, 1)), (date(1, 1, 1), date(9999, 12, 30)), (date(2026, 1, 1), date(2026, 12, 31)),
])
def test_ranges_that_are_read(first, last):
    check_day_range(first, last)


@pytest.mark.parametrize(("first", "last", "field", "message"), [
    (date(2026, 2, 1), date(2026, 1, 31), "from", "'from' (2026-02-01) is after 'to' (2026-01-31)."),
    (date(2026, 1, 1), date(9999, 12, 31), "to", "'to' must be before 9999-12-31."),
    (date(9999, 12, 31), date(9999, 12, 31), "to", "'to' must be before 9999-12-31."),
])
def test_ranges_that_are_refused(first, last, field, message):
    with pytest.raises(BillingError) as refused:
        check_day_range(first, last)
    assert (refused.value.code, refused.value.field, refused.value.message) == (
        BillingErrorCode.VALIDATION, field, message)
