"""Billing details: who invoices are addressed to (legal name, address, country, tax ID), and the
language of the organization's documents (en, the default, or id; ``domain.language``).

Pure rules: each field is optional; an empty string clears it. Control characters other than
newlines in the address are refused. The country is an ISO 3166-1 alpha-2 code; an Indonesian
tax ID is an NPWP of 15 digits (99.999.999.9-999.999) or the 16-digit form (NIK-based, 2024 on).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from billing_graphql.domain.errors import validation
from billing_graphql.domain.language import DEFAULT_LANGUAGE, Language, clean_language

LEGAL_NAME_MAX = 200
ADDRESS_MAX = 1000
TAX_ID_MAX = 64
_COUNTRY = re.compile(r"[A-Z]{2}")
_TAX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ./\-]*")
_NPWP_SEPARATORS = re.compile(r"[ .\-]")


@dataclass(frozen=True, slots=True)
class BillingDetailsValue:
    legal_name: str | None = None
    address: str | None = None
    country: str | None = None
    tax_id: str | None = None
    language: Language = DEFAULT_LANGUAGE

    @property
    def is_empty(self) -> bool:
        return not (self.legal_name or self.address or self.country or self.tax_id)


def _text(value: str, field: str, maximum: int, *, multiline: bool = False) -> str | None:
    allowed = {"\n"} if multiline else set()
    if any((ord(ch) < 32 or ord(ch) == 127) and ch not in allowed for ch in value.replace("\r\n", "\n")):
        raise validation("Control characters are not allowed.", field)
    value = value.replace("\r\n", "\n").strip()
    if multiline:
        value = "\n".join(line.strip() for line in value.split("\n") if line.strip())
    if len(value) > maximum:
        raise validation(f"At most {maximum} characters.", field)
    return value or None


def clean_country(value: str) -> str | None:
    country = _text(value, "country", 2)
    if country is None:
        return None
    country = country.upper()
    if not _COUNTRY.fullmatch(country):
        raise validation("A country is an ISO 3166-1 alpha-2 code, such as ID or SG.", "country")
    return country


def clean_tax_id(value: str, country: str | None) -> str | None:
    tax_id = _text(value, "taxId", TAX_ID_MAX)
    if tax_id is None:
        return None
    if not _TAX_ID.fullmatch(tax_id):
        raise validation("A tax ID holds letters, digits, spaces, '.', '-' and '/'.", "taxId")
    if country == "ID":
        digits = _NPWP_SEPARATORS.sub("", tax_id)
        if not digits.isdigit() or len(digits) not in (15, 16):
            raise validation("An Indonesian tax ID (NPWP) has 15 or 16 digits.", "taxId")
    return tax_id


def merge_billing_details(
    current: BillingDetailsValue,
    *,
    legal_name: str | None = None,
    address: str | None = None,
    country: str | None = None,
    tax_id: str | None = None,
    language: str | None = None,
) -> BillingDetailsValue:
    """The details after a change: None keeps a field, "" clears it (the language cannot be
    cleared: it is en or id), anything else is checked."""
    name = current.legal_name if legal_name is None else _text(legal_name, "legalName", LEGAL_NAME_MAX)
    where = current.address if address is None else _text(address, "address", ADDRESS_MAX, multiline=True)
    nation = current.country if country is None else clean_country(country)
    tax = current.tax_id if tax_id is None else clean_tax_id(tax_id, nation)
    if tax_id is None and country is not None and tax is not None:
        tax = clean_tax_id(tax, nation)  # a kept tax ID must still fit the new country
    speaks = current.language if language is None else clean_language(language)
    return BillingDetailsValue(legal_name=name, address=where, country=nation, tax_id=tax, language=speaks)
