"""The languages documents are written in, and money and dates formatted for them (Babel).

An organization's documents (invoice and credit-note PDFs) are in its billing details' language:
English (``en``, the default) or Indonesian (``id``). Amounts keep the currency's exponent of
``domain.money`` (IDR whole rupiah) and take the language's separators: ``Rp 1.663.890`` in
Indonesian, ``Rp 1,663,890`` in English. The rupiah is written ``Rp`` in both languages (as
Indonesians write it); other currencies take the symbol CLDR gives the language (``US$`` in
Indonesian, ``$`` in English).
"""

from __future__ import annotations

import enum
from datetime import date, datetime, tzinfo

from babel.dates import format_date as _babel_date
from babel.numbers import format_decimal, get_currency_symbol

from billing_graphql.domain.errors import validation
from billing_graphql.domain.money import Money, exponent


class Language(enum.StrEnum):
    EN = "en"
    ID = "id"

    @property
    def locale(self) -> str:
        return {Language.EN: "en", Language.ID: "id_ID"}[self]


DEFAULT_LANGUAGE = Language.EN
LANGUAGE_CODES = tuple(language.value for language in Language)


def clean_language(value: str, field: str = "language") -> Language:
    """``en`` or ``id`` (any case, a region such as ``id-ID`` ignored); anything else is a
    VALIDATION error on ``field``."""
    code = (value or "").strip().replace("_", "-").split("-")[0].lower()
    try:
        return Language(code)
    except ValueError:
        raise validation(f"A language is one of {', '.join(LANGUAGE_CODES)}; got {value!r}.", field) from None


def language_of(value: str | None) -> Language:
    """A stored code as a Language (None or an unknown code: the default)."""
    try:
        return Language(value) if value else DEFAULT_LANGUAGE
    except ValueError:
        return DEFAULT_LANGUAGE


def currency_symbol(currency: str, language: Language) -> str:
    if currency == "IDR":
        return "Rp"
    return get_currency_symbol(currency, locale=language.locale)


def format_amount(minor: int, currency: str, language: Language = DEFAULT_LANGUAGE) -> str:
    """The number alone, with the currency's exponent of places and the language's separators."""
    places = exponent(currency)
    pattern = "#,##0" + ("." + "0" * places if places else "")
    return format_decimal(abs(Money(minor, currency).amount), format=pattern, locale=language.locale)


def format_money(minor: int, currency: str, language: Language = DEFAULT_LANGUAGE) -> str:
    """``Rp 1.663.890`` (id), ``Rp 1,663,890`` (en), ``-US$29,00`` (id), ``$29.00`` (en)."""
    symbol = currency_symbol(currency, language)
    separator = " " if symbol[-1:].isalpha() else ""
    return f"{'-' if minor < 0 else ''}{symbol}{separator}{format_amount(minor, currency, language)}"


def format_day(value: date | datetime | None, language: Language = DEFAULT_LANGUAGE, *,
               timezone: tzinfo | None = None, month: str = "long") -> str:
    """``15 January 2026`` / ``15 Januari 2026`` (``month="short"``: ``15 Jan 2026``); an aware
    datetime is first moved to ``timezone`` when one is given. None is ``-``."""
    if value is None:
        return "-"
    if isinstance(value, datetime):
        value = (value.astimezone(timezone) if timezone is not None else value).date()
    pattern = "d MMMM y" if month == "long" else "d MMM y"
    return _babel_date(value, format=pattern, locale=language.locale)
