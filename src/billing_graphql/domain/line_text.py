"""An invoice line's description in a document's language, from what the line bills
(``LineDraft.detail``, kept on ``invoice_lines.detail``): the plan, add-on or metric by name, the
billing period, the agents or units included, and for a proration what it prorates.

English keeps the sentence the services wrote (``description``, the API's field), so an English
document reads as before. A line without structure (a one-off charge's own text, a line written
before migration 0021) keeps its description in every language.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from billing_graphql.domain.language import Language

PERIODS = {"MONTHLY": "bulanan", "ANNUAL": "tahunan"}
MODELS = {"GRADUATED": "bertingkat", "VOLUME": "volume"}


def _number(value: int) -> str:
    return f"{value:,}".replace(",", ".")


def _indonesian(detail: Mapping[str, Any]) -> str | None:
    """The Indonesian text of ``detail``; None for a shape this module does not know."""
    if "proration" in detail:
        of = detail.get("of")
        what = _indonesian(of) if isinstance(of, Mapping) else None
        if what is None:
            return None
        return {"unused": f"Waktu tidak terpakai pada {what}", "remaining": f"Sisa waktu pada {what}",
                "new_period": f"{what}, periode baru"}.get(detail["proration"])
    period = PERIODS.get(detail.get("period", ""), "")
    suffix = f" ({period})" if period else ""
    if "plan" in detail:
        return f"Paket {detail['plan']}{suffix}"
    if "addon" in detail:
        quantity = f" x {detail['quantity']}" if detail.get("quantity") is not None else ""
        per_agent = ", per agen" if detail.get("per_agent") else ""
        return f"Add-on {detail['addon']}{quantity}{per_agent}{suffix}"
    if "included" in detail and "metric" not in detail:
        return f"Agen di atas {_number(detail['included'])} yang termasuk{suffix}"
    if "metric" in detail:
        text = str(detail["metric"])
        if detail.get("model") == "PACKAGE" and detail.get("package_size"):
            text += f" dalam paket {_number(detail['package_size'])}"
        elif detail.get("model") in MODELS:
            text += f" (tarif {MODELS[detail['model']]})"
        if detail.get("included"):
            text += f" di atas {_number(detail['included'])} yang termasuk per bulan"
        if detail.get("capped"):
            text += " (dibatasi batas pengeluaran)"
        return text
    return None


def line_text(description: str, detail: Mapping[str, Any] | None, language: Language) -> str:
    """The line's description in ``language``: built from ``detail`` for Indonesian; the stored
    English sentence otherwise (and where the line has no structure this module knows)."""
    if language is Language.ID and detail:
        return _indonesian(detail) or description
    return description
