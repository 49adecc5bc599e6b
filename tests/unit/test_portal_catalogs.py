"""The portal's gettext catalogs: every message the templates and the portal's code mark is
translated into Indonesian, no translation is left over, and the formats are the language's."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from billing_graphql.domain.errors import BillingError, BillingErrorCode
from billing_graphql.http.portal import i18n
from billing_graphql.http.portal.messages import ERRORS, NOTICES, error_key
from billing_graphql.services.portal import sessions

PORTAL = Path(i18n.__file__).parent
# The 403 page's sentences come from the link's check (services.portal.sessions).
LINK_MESSAGES = {"This billing portal link is not valid.", "This billing portal link has expired.", sessions.ENDED,
                 "The billing portal is not available."}


def marked_messages() -> set[str]:
    found = set()
    for _, _, message, _, _ in extract_from_dir(
        PORTAL, method_map=[("**.py", "python"), ("templates/**.html", "jinja2")],
        options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords={"_": None, "N_": None, "gettext": None},
    ):
        found.add(message[0] if isinstance(message, tuple) else message)
    return found | LINK_MESSAGES


def indonesian() -> dict[str, str]:
    with (PORTAL / "locale" / "id" / "LC_MESSAGES" / "messages.po").open("rb") as handle:
        return {message.id: message.string for message in read_po(handle) if message.id}


def test_every_marked_message_has_its_indonesian_translation_and_none_is_left_over():
    marked, catalog = marked_messages(), indonesian()
    assert len(marked) > 150
    assert sorted(message for message in marked if not catalog.get(message)) == []
    assert sorted(set(catalog) - marked) == []


def test_the_placeholders_are_kept_in_every_translation():
    import re

    for message, translation in indonesian().items():
        assert re.findall(r"%\(\w+\)s", message) == sorted(re.findall(r"%\(\w+\)s", translation),
                                                           key=re.findall(r"%\(\w+\)s", message).index), message


def test_every_refusal_of_a_service_is_a_sentence_never_a_code():
    for code in BillingErrorCode:
        for field in (None, "taxId", "country", "prorationDate", "couponCode", "gatewayPaymentMethodId", "id"):
            key = error_key(BillingError(code, "At most 200 characters." if field == "country" else "x", field=field))
            sentence = ERRORS[key]
            assert sentence.endswith((".", "/")) and code.value not in sentence and " " in sentence
    assert error_key(BillingError(BillingErrorCode.PAYMENT_FAILED, "x", decline_code="insufficient_funds")) == \
        "declined-insufficient_funds"
    assert set(NOTICES) and all(text.endswith(".") for text in NOTICES.values())


def test_languages_and_formats():
    assert i18n.choose_language("id", "en") == "id"
    assert i18n.choose_language("xx", "id-ID,id;q=0.9,en;q=0.8") == "id"
    assert i18n.choose_language(None, "en-US,en;q=0.9,id;q=0.5") == "en"
    assert i18n.choose_language(None, "fr;q=1, in;q=0.5") == "id"  # the old code of Indonesian
    assert i18n.choose_language(None, "de") == "en" and i18n.choose_language(None, None) == "en"
    indonesian_formats, english = i18n.Formats("id"), i18n.Formats("en")
    assert indonesian_formats.money(1663890, "IDR") == "Rp\u00a01.663.890"
    assert english.money(1663890, "IDR") == "Rp\u00a01,663,890"
    assert english.money(-1950, "USD") == "-$19.50" and indonesian_formats.money(1950, "USD") == "$19,50"
    assert indonesian_formats.date(datetime(2027, 2, 22, tzinfo=UTC)) == "22 Februari 2027"
    assert english.date(datetime(2027, 2, 22, tzinfo=UTC)) == "February 22, 2027"
    assert i18n.translations("id").gettext("Pay now") == "Bayar sekarang"
    assert i18n.translations("en").gettext("Pay now") == "Pay now"
