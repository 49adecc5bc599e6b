"""Card-number detection: Luhn and the shapes a card number is written in."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from billing_graphql.domain.cards import contains_card_number, luhn_check_digit, luhn_valid
from tests.card_formats import CARD_FORMATS

# Published test numbers of the card networks (Stripe's and Razorpay's test cards).
TEST_CARDS = [
    "4242424242424242",  # Visa
    "4111111111111111",  # Visa
    "5555555555554444",  # Mastercard
    "378282246310005",  # Amex, 15 digits
    "6011111111111117",  # Discover
    "3056930009020004",  # Diners, 16 digits
    "4222222222222",  # Visa, 13 digits
    "6200000000000005",  # UnionPay
]

payloads = st.text(alphabet="0123456789", min_size=12, max_size=18)
filler = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_:./", min_size=0, max_size=12)


def card_from(payload: str) -> str:
    return payload + luhn_check_digit(payload)


@pytest.mark.parametrize("number", TEST_CARDS)
def test_published_test_cards_are_detected(number):
    assert luhn_valid(number)
    assert contains_card_number(number)
    assert contains_card_number(f"my card {number} thanks")


@pytest.mark.parametrize(
    "text",
    [
        "4242 4242 4242 4242",
        "4242-4242-4242-4242",
        "3782 822463 10005",
        "visa 4242 4242 4242 4242 exp 12 29",
        "4242 4242 4242 4242 12 29",  # trailing groups after the number
        "pm_4242424242424242",
        "4242  4242 - 4242  4242",
        "\uff14\uff12\uff14\uff12" * 4,  # full-width digits
        "4242    4242    4242    4242",  # any run of separators joins groups
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111_1111_1111_1111",
        "4111:1111:1111:1111",
        "4111+1111+1111+1111",
        "4111\t1111\t1111\t1111",
        "card: 4111 / 1111 / 1111 / 1111.",
    ],
)
def test_grouped_and_embedded_numbers_are_detected(text):
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "pm_card_visa",
        "Visa ending 4242",
        "4242424242424241",  # fails Luhn
        "424242424242",  # 12 digits
        "token_F462XCM3u2oLOq",
        "BCA VA 8077 0812",
    ],
)
def test_other_text_is_not_a_card(text):
    assert not contains_card_number(text)


@given(payloads)
def test_check_digit_completes_a_luhn_number(payload):
    number = card_from(payload)
    assert luhn_valid(number)
    assert contains_card_number(number)


@given(payloads, st.integers(min_value=0, max_value=18), st.integers(min_value=1, max_value=9))
def test_luhn_catches_every_single_digit_error(payload, position, delta):
    number = card_from(payload)
    position %= len(number)
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1 :]
    assert not luhn_valid(changed)
    assert not contains_card_number(changed)


@given(payloads, filler, filler, st.sampled_from([" ", "-"]), st.integers(min_value=2, max_value=6))
def test_detected_however_grouped_and_wherever_embedded(payload, before, after, separator, group):
    number = card_from(payload)
    grouped = separator.join(number[i : i + group] for i in range(0, len(number), group))
    assert contains_card_number(f"{before}{grouped}{after}")
    assert contains_card_number(f"{before} {grouped} {after}")


@given(st.text(alphabet="0123456789", min_size=0, max_size=12), filler)
def test_fewer_than_thirteen_digits_never_match(digits, text):
    assert not contains_card_number(text + digits + text)


@given(payloads, st.text(alphabet="0123456789", min_size=1, max_size=12),
       st.text(alphabet="0123456789", min_size=0, max_size=12))
def test_a_card_glued_to_other_digits_is_found(payload, before, after):
    # A run of 20 or more digits counts as a card when a 13..19-digit window of it passes Luhn.
    number = card_from(payload)
    assume(len(before + number + after) >= 20)  # up to 19 digits, a run is one candidate
    assert contains_card_number(before + number + after)
    assert contains_card_number(number + "1234567")


@pytest.mark.parametrize("text", CARD_FORMATS)
def test_the_35_formats_of_the_issue_are_cards(text):
    assert contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "550e8400-e29b-41d4-a716-446655440000",  # a UUID: its hex letters are not separators
        "pm_1OqLJk2eZvKYlo2C0bW4N1rE",  # a processor's token
        "Jl. Sudirman No. 12, Jakarta 10220",
        "Visa ending 4242 exp 12/29",
        "4111 ab 1111 ab 1111 ab 1111",  # two letters break a number
    ],
)
def test_ordinary_text_and_identifiers_are_not_cards(text):
    assert not contains_card_number(text)


@given(st.text())
def test_never_raises_on_any_text(text):
    assert contains_card_number(text) in (True, False)


@given(payloads)
def test_text_without_digits_around_a_non_card_stays_clean(payload):
    number = card_from(payload)
    wrong = number[:-1] + str((int(number[-1]) + 1) % 10)
    assume(not luhn_valid(wrong))
    assert not contains_card_number(f"label {wrong} end")


# Separators: runs of characters that are neither letters nor digits (issue 13, item 2).
separators = st.text(
    alphabet=st.characters(blacklist_categories=("L", "N", "Cs")), min_size=1, max_size=4
)


@st.composite
def split_number(draw, number: str) -> list[str]:
    cuts = draw(st.lists(st.integers(min_value=1, max_value=len(number) - 1), unique=True, max_size=6))
    bounds = [0, *sorted(cuts), len(number)]
    return [number[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@given(st.data(), payloads, filler)
def test_any_separators_between_groups_are_removed(data, payload, around):
    number = card_from(payload)
    groups = data.draw(split_number(number))
    joiners = [data.draw(separators) for _ in groups[1:]]
    text = groups[0] + "".join(sep + group for sep, group in zip(joiners, groups[1:], strict=True))
    assert contains_card_number(text)
    assert contains_card_number(f"{around} {text} {around}")


@given(st.data(), st.text(alphabet="0123456789", min_size=12, max_size=12))
def test_separated_thirteen_digits_failing_luhn_are_not_cards(data, payload):
    # 13 digits: the only candidate is the whole number, so Luhn alone decides.
    number = payload + str((int(luhn_check_digit(payload)) + 1) % 10)
    groups = data.draw(split_number(number))
    text = groups[0] + "".join(data.draw(separators) + group for group in groups[1:])
    assert not contains_card_number(text)


@given(payloads, st.sampled_from("abxXー"), st.sampled_from(["", " ", "-"]))
def test_one_letter_is_a_separator(payload, letter, space):
    number = card_from(payload)
    half = len(number) // 2
    assert contains_card_number(number[:half] + space + letter + space + number[half:])


@given(payloads, st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=3))
def test_two_letters_are_not_separators(payload, letters):
    number = card_from(payload)
    half = len(number) // 2
    # Each side alone has fewer than 13 digits, so only a join across letters could match.
    assert not contains_card_number(number[:half] + letters + number[half:])
