"""Document languages: codes, and money and dates formatted for each (Babel)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from billing_graphql.domain.errors import BillingError
from billing_graphql.domain.language import Language, clean_language, format_day, format_money, language_of
from billing_graphql.domain.tax import TaxRule, in_proportion, tax_base
from decimal import Decimal


def test_codes_are_en_and_id_in_any_case_with_a_region_ignored():
    assert clean_language("id") is Language.ID and clean_language(" ID-id ") is Language.ID
    assert clean_language("en_US") is Language.EN
    for bad in ("fr", "", "indonesian", "i"):
        with pytest.raises(BillingError) as caught:
            clean_language(bad)
        assert caught.value.field == "language" and "en, id" in caught.value.message
    assert language_of(None) is Language.EN and language_of("xx") is Language.EN and language_of("id") is Language.ID


@pytest.mark.parametrize(
    ("minor", "currency", "language", "text"),
    [
        (1_663_890, "IDR", Language.ID, "Rp 1.663.890"),
        (1_663_890, "IDR", Language.EN, "Rp 1,663,890"),
        (-120_000, "IDR", Language.ID, "-Rp 120.000"),
        (2_900, "USD", Language.EN, "$29.00"),
        (2_900, "USD", Language.ID, "US$29,00"),
        (1_234, "KWD", Language.EN, "KWD 1.234"),
    ],
)
def test_money_keeps_the_currency_exponent_and_takes_the_language_separators(minor, currency, language, text):
    assert format_money(minor, currency, language) == text


def test_days_in_the_language_and_the_book_time_zone():
    late = datetime(2026, 1, 15, 20, 0, tzinfo=UTC)  # 16 January 03:00 in Jakarta
    assert format_day(late, Language.EN) == "15 January 2026"
    assert format_day(late, Language.ID, timezone=ZoneInfo("Asia/Jakarta")) == "16 Januari 2026"
    assert format_day(date(2026, 8, 17), Language.ID, month="short") == "17 Agu 2026"
    assert format_day(None, Language.ID) == "-"


def test_ppn_base_is_eleven_twelfths_rounded_once_and_the_tax_is_on_the_exact_base():
    ppn = TaxRule("PPN", Decimal("0.12"), 11, 12)
    assert ppn.base_on(1_080_000) == tax_base(1_080_000, 11, 12) == 990_000
    assert ppn.tax_on(1_080_000) == 118_800 == 990_000 * 12 // 100
    assert ppn.base_on(-1_080_000) == -990_000
    # 299,000: DPP 274,083.33 stated 274,083; PPN 11% of 299,000 = 32,890 (12% of the exact DPP)
    assert (ppn.base_on(299_000), ppn.tax_on(299_000)) == (274_083, 32_890)
    for taxable in range(0, 50_000, 7):  # the rate on the stated base never strays a whole unit
        assert abs(Decimal(ppn.base_on(taxable)) * ppn.rate - ppn.tax_on(taxable)) < 1


def test_shares_in_proportion_round_once():
    assert in_proportion(11_000, 55_500, 111_000) == 5_500
    assert in_proportion(118_800, -100_000, 1_198_800) == -9_910
    assert in_proportion(5, 1, 0) == 0
