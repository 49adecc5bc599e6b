"""The portal's languages: English and Indonesian.

The language is ``?lang=`` when given (``en`` or ``id``), else the best match of the browser's
Accept-Language, else English. Messages are gettext catalogs beside the templates
(``locale/<lang>/LC_MESSAGES/messages.po``; English is the message ids themselves), read with
Babel when first needed, so the wheel ships the ``.po`` files and nothing is compiled at build.
Numbers, money and dates are formatted with Babel for the language (``Rp 1.663.890`` in
Indonesian, ``Rp 1,663,890`` in English; the space is a no-break space).
"""

from __future__ import annotations

import gettext
from datetime import datetime
from decimal import Decimal
from functools import cache
from pathlib import Path

from babel import Locale
from babel.core import UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

from billing_graphql.domain.money import SYMBOLS, Money, exponent

LANGUAGES = ("en", "id")
DEFAULT_LANGUAGE = "en"
CATALOGS = Path(__file__).parent / "locale"
LANGUAGE_NAMES = {"en": "English", "id": "Bahasa Indonesia"}


class CatalogTranslations(gettext.NullTranslations):
    """gettext over a Babel catalog read from its ``.po`` file (no ``.mo`` needed)."""

    def __init__(self, messages: dict[str, str]) -> None:
        super().__init__()
        self._messages = messages

    def gettext(self, message: str) -> str:
        return self._messages.get(message) or message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return self.gettext(singular if n == 1 else plural)


@cache
def translations(language: str) -> gettext.NullTranslations:
    path = CATALOGS / language / "LC_MESSAGES" / "messages.po"
    if language == DEFAULT_LANGUAGE or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    return CatalogTranslations({message.id: message.string for message in catalog
                                if message.id and isinstance(message.id, str) and message.string
                                and not message.fuzzy})


def choose_language(requested: str | None, accept_language: str | None,
                    fallback: str | None = DEFAULT_LANGUAGE) -> str | None:
    """``?lang=`` when it is en or id, else the browser's best match, else ``fallback``."""
    if requested in LANGUAGES:
        return requested
    preferences: list[tuple[float, str]] = []
    for position, part in enumerate((accept_language or "").split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        preferences.append((-quality + position * 1e-6, tag.strip().replace("_", "-").lower()))
    for _, tag in sorted(preferences):
        primary = tag.split("-")[0]
        if primary == "in":  # the old code of Indonesian
            primary = "id"
        if primary in LANGUAGES:
            return primary
    return fallback


class Formats:
    """Numbers, money and dates in one language."""

    def __init__(self, language: str) -> None:
        self.language = language
        try:
            self.locale = Locale.parse(language)
        except (UnknownLocaleError, ValueError):
            self.locale = Locale.parse(DEFAULT_LANGUAGE)

    def number(self, value: int | Decimal) -> str:
        return format_decimal(value, locale=self.locale)

    def money(self, minor: int, currency: str) -> str:
        places = exponent(currency)
        amount = Money(minor, currency).amount
        pattern = "#,##0" + ("." + "0" * places if places else "")
        digits = format_decimal(abs(amount), format=pattern, locale=self.locale, decimal_quantization=True)
        sign = "-" if amount < 0 else ""
        symbol = SYMBOLS.get(currency)
        if symbol is None or currency == "IDR":  # a no-break space: "Rp" never ends a line
            return f"{sign}{symbol or currency}\u00a0{digits}"
        return f"{sign}{symbol}{digits}"

    def date(self, value: datetime | None) -> str:
        return format_date(value, format="long", locale=self.locale) if value is not None else "-"

    def datetime(self, value: datetime | None) -> str:
        if value is None:
            return "-"
        return format_datetime(value, format="medium", tzinfo=value.tzinfo, locale=self.locale) + " UTC"
