"""PII rules in detail: phone numbers of every region, any Luhn-valid card, IBANs in any case, SSNs by
stdnum, IP addresses told apart from versions, provider keys of any length; and the look-alikes each
rule must leave alone (order, invoice and tracking numbers, dates, prices, ISBNs, versions, words)."""

from __future__ import annotations

import time

import pytest
from stdnum import luhn

from edgekit.safety.filters import Context
from edgekit.safety.filters.pii import PiiFilter, _regions
from edgekit.safety.filters.secrets import SecretsFilter
from edgekit.safety.guard import Guard
from edgekit.safety.policy import SafetyPolicy

PII = PiiFilter()


def found(text: str, f: object = PII) -> list[tuple[str, str]]:
    verdicts = f.check(text, Context())  # type: ignore[attr-defined]
    return [(s.kind, text[s.start : s.end]) for v in verdicts for s in v.spans]


def card(body: str) -> str:
    """A test card number: ``body`` finished with its Luhn check digit."""
    return body + luhn.calc_check_digit(body)


# --- phone numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("Ruf mich an: 0171 2345678", "0171 2345678"),  # DE mobile, national
        ("Tel. (030) 2345 6789, ab 9 Uhr", "(030) 2345 6789"),  # DE, area code in parentheses
        ("Mon portable : 06 45 67 89 01", "06 45 67 89 01"),  # FR
        ("Llámame al 612 34 56 78, por favor", "612 34 56 78"),  # ES, no trunk prefix
        ("電話 090-1234-5678 までどうぞ", "090-1234-5678"),  # JP, between CJK words
        ("Телефон: 8 (912) 345-67-89", "8 (912) 345-67-89"),  # RU, trunk prefix 8
        ("call 020 7946 0018 after lunch", "020 7946 0018"),  # GB
        ("My mobile is 9876543210", "9876543210"),  # IN, bare digits with a cue
        ("Dial 0044 20 7946 0018 from abroad", "0044 20 7946 0018"),  # 00 instead of +
        ("WhatsApp +55 11 91234 5678", "+55 11 91234 5678"),
        ("Our fax: +1 (212) 555 0199", "+1 (212) 555 0199"),
        ("Write this down: 0612 345 678.", "0612 345 678"),  # no cue, but written like a phone number
        ("my number is 512 345 678", "512 345 678"),  # PL mobile: grouped like 512,345,678 needs the cue
        ("Write this down - (0-312) 34567 - thanks.", "(0-312) 34567"),  # area code with a separator inside
    ],
)
def test_phone_numbers_in_national_and_international_formats(text: str, number: str) -> None:
    assert ("phone", number) in found(text)


def test_the_policy_region_does_not_limit_which_national_formats_count() -> None:
    for region in ("US", "DE", "jp"):
        assert ("phone", "06 45 67 89 01") in found("Appelez-moi au 06 45 67 89 01", PiiFilter(region=region))


def test_the_policy_region_is_tried_first() -> None:
    assert _regions("DE")[0][0] == "DE"
    assert PiiFilter(region="fr").region == "FR"


@pytest.mark.parametrize(
    "text",
    [
        "Order 0171 2345678 shipped",  # an order cue closest to the number
        "Call us about order 0301234567",
        "Invoice 2024-000123 is overdue",
        "Invoice INV-2024-000123 is overdue",
        "Bestellnummer 4915123456789",
        "Ticket 1234567890 was closed",
        "found 2125550123 in the log",  # a bare ten-digit run needs a cue
        "ISBN 978-3-16-148410-0",
        "see 978-3-16-148410-0 in the catalogue",
        "Meet on 12.03.2024 at the office",
        "Costs €1 299 000 in total",
        "It was 1 299 000 dollars",
        "version 10.2.3.4 is out",
        "Upgrade to version 18.21.35 before Friday.",
        "Call extension 4411 for support.",
        "Room 355 on floor 83378, desk 9.",
        "The population grew from 8 000 000 to 9 500 000.",
        "Die Stadt hat 3.644.826 Einwohner.",
        "GPS 40.7128 -74.0060",
        "Coordinates: 48.85661, 102.35222",
        "He worked there 1998-2004, then moved.",
        "Seasons 2020/2021/2022 were the best.",
        "Winning numbers 04 12 23 31 38 45",
        "- years of service: 1861 - 1865",  # year ranges with spaces, and before 1900
        "1251-1265: the county passed to his son.",
        "The war (17761781) ended with a treaty.",  # a dash lost in copying: two years in parentheses
        "a total population of 46,307 (2005). It belongs",  # a figure and its year
        "with a population of 850,106 (2015 estimate).",
        "| #7 | Hoyas | 10-8 (19-12) | 1-0 |",  # a season record
    ],
)
def test_numbers_that_are_not_phone_numbers(text: str) -> None:
    assert found(text) == []


def test_a_national_number_with_a_card_cue_is_not_a_phone() -> None:
    assert found("Card 4111 1111 1111 1112") == []  # fails Luhn: not a card, and not a phone either


def test_many_phone_candidates_stay_cheap() -> None:
    text = "Call " + ", ".join(f"0{i:02d} {i * 7919 % 1000000:06d}" for i in range(100))
    t = time.perf_counter()
    PII.check(text, Context())
    assert time.perf_counter() - t < 5.0  # about 50 ms on a laptop; a scan of every region each is ~1 s


# --- payment cards ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "number"),
    [
        (f"JCB {card('21310000123456')}", card("21310000123456")),  # 15-digit JCB
        (f"here: {card('35280000123456')}.", card("35280000123456")),  # 15-digit JCB 35xx, no cue
        (f"Maestro {card('67590000123')}", card("67590000123")),  # 12-digit Maestro
        (f"my card: {card('5020123456789')}", card("5020123456789")),  # 13-digit Maestro
        (f"UnionPay {card('621234567890123456')}", card("621234567890123456")),  # 19 digits
        (f"Mir {card('220012345678901')}", card("220012345678901")),
        (f"Карта {card('220412345678901')}", card("220412345678901")),  # Russian cue
        ("Pay with 5555 5555 5555 4444 today", "5555 5555 5555 4444"),
        ("Diners 3622 720627 1667", "3622 720627 1667"),  # 4-6-4
    ],
)
def test_cards_of_every_network(text: str, number: str) -> None:
    assert ("payment_card", number) in found(text)


def test_card_grouping_or_a_cue_makes_an_unknown_prefix_count() -> None:
    number = card("123456789012345")  # no issuer uses 1234...
    grouped = " ".join(number[i : i + 4] for i in range(0, 16, 4))
    assert found(f"it is {number}") == []
    assert ("payment_card", number) in found(f"credit card {number}")
    assert ("payment_card", grouped) in found(f"it is {grouped}")


@pytest.mark.parametrize(
    "text",
    [
        "Order 5555555555554444 shipped",
        "Tracking: 4111 1111 1111 1111",
        "order_id=5587239802664031",
        "Bestellnummer 3530111333300000",
        "Rechnung 2024 0000 0000 0004",
        "USPS 9400 1000 0000 0000 0000 00",  # 22 digits: part of it is no card
    ],
)
def test_luhn_valid_numbers_with_other_cues_are_not_cards(text: str) -> None:
    assert [k for k, _ in found(text) if k == "payment_card"] == []


# --- IBAN ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("iban de89 3704 0044 0532 0130 00 thanks", "de89 3704 0044 0532 0130 00"),
        ("pay to gb82west12345698765432.", "gb82west12345698765432"),
        ("Konto Fr14 2004 1010 0505 0001 3M02 606", "Fr14 2004 1010 0505 0001 3M02 606"),
        ("IBAN: DE89-3704-0044-0532-0130-00", "DE89-3704-0044-0532-0130-00"),
        ("nl91abna0417164300 is mine", "nl91abna0417164300"),
    ],
)
def test_iban_in_any_case_and_spacing(text: str, value: str) -> None:
    assert ("iban", value) in found(text)


@pytest.mark.parametrize(
    "text", ["iban de00 3704 0044 0532 0130 00", "gb00west12345698765432", "the mp3s and mp4s folder"]
)
def test_iban_look_alikes(text: str) -> None:
    assert found(text) == []


# --- SSN, IP addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SSN 536-90-4399", [("us_ssn", "536-90-4399")]),
        ("My SSN is 536 90 4399", [("us_ssn", "536 90 4399")]),
        ("SSN 219-09-9999", []),  # published as an example, never issued (stdnum's list)
        ("SSN 078-05-1120", []),
        ("Ref 536 90 4399", []),
        ("Tel. +992 372 12 3456", [("phone", "+992 372 12 3456")]),  # not an SSN inside a phone number
    ],
)
def test_ssn_by_stdnum(text: str, expected: list[tuple[str, str]]) -> None:
    assert found(text) == expected


@pytest.mark.parametrize(
    ("text", "is_ip"),
    [
        ("connect to 10.0.0.1 now", True),
        ("IP 192.168.1.20 is blocked", True),
        ("ssh root@10.1.2.3", True),
        ("server 8.8.4.4 unreachable", True),
        ("version 1.2.3.4 is out", False),
        ("v10.0.0.1 is the latest", False),
        ("Python 3.11.7.1 is installed", False),
        ("build 10.0.0.12 passed", False),
        ("Node 18.19.0.1 released", False),
    ],
)
def test_ip_addresses_and_versions(text: str, is_ip: bool) -> None:
    kinds = [k for k, _ in found(text)]
    assert (kinds == ["ip_address"]) if is_ip else (kinds == [])


# --- secrets ---------------------------------------------------------------------------------------

SECRETS = SecretsFilter()


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("sk-proj-Q3fV9kLm2xTz7RbN0pWc4HdJ8sA", "openai_key"),  # 35 characters in all
        ("sk-proj-" + "Zx8_kQ-2" * 20, "openai_key"),
        ("sk-svcacct-" + "9fKq2LmZ" * 5, "openai_key"),
        ("sk-ant-api03-Xy7_Qm2-Lp9Rt4Vb6Nc1Ws8e", "anthropic_key"),
        ("github_pat_11ABCDE0F1234567890abc_" + "Zq9Lm2Xc7Vb4Nn1Kk3Hh5Gg" * 3, "github_token"),
        ("glpat-xY7_kLm2Qp9Rt4Vb6Nc1", "gitlab_token"),
        ("npm_" + "a1B2c3D4e5F6" * 3, "npm_token"),
        ("gsk_" + "Qm2Lp9Rt4Vb6Nc1W" * 4, "groq_key"),
        ("sk-or-v1-" + "0123456789abcdef" * 4, "openrouter_key"),
        ("hf_" + "Ab3dE6gH9jK" * 3 + "x", "huggingface_token"),
        ("sk-" + "a7B9c2D4e6F8" * 3, "api_key"),  # another provider's "sk-" key
    ],
)
def test_provider_keys_of_any_length(key: str, kind: str) -> None:
    assert (kind, key) in found(f"export KEY={key} # do not share", SECRETS)


def test_the_short_project_key_from_the_report_is_35_characters() -> None:
    key = "sk-proj-Q3fV9kLm2xTz7RbN0pWc4HdJ8sA"
    assert len(key) == 35 and found(key, SECRETS) == [("openai_key", key)]


@pytest.mark.parametrize(
    "text",
    [
        "see sk-proj-management-plan-for-the-quarter",
        "sk-ant-api03-is-the-prefix-of-anthropic-keys",
        "the github_pat_prefix_marks_fine_grained_tokens doc",
        "glpat-tokens-are-described-in-the-gitlab-docs",
        "npm_config_cache=/tmp/npm",
        "sk-learn-compatible-estimators-and-pipelines",
    ],
)
def test_key_prefixes_followed_by_words_are_not_keys(text: str) -> None:
    assert found(text, SECRETS) == []


# --- streaming -------------------------------------------------------------------------------------

GUARD = Guard(SafetyPolicy.parse(""), classifier=False)


def test_a_national_phone_number_streamed_one_character_at_a_time_is_redacted() -> None:
    text = "Sure - call me at 0171 2345678 after six, or write."
    sg = GUARD.stream("output")
    out = "".join(sg.feed(c) for c in text) + sg.finish()
    assert out == "Sure - call me at [REDACTED:phone] after six, or write."
