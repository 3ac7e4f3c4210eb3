"""Build recipes/data/safety/pii.jsonl and benign.jsonl: the PII benchmark set (seeded, reproducible).

pii.jsonl: sentences in several languages that each hold one or two structured PII items (email, phone in
international and national formats, payment card with a valid Luhn digit, IBAN with valid check digits,
US SSN, IPv4/IPv6, date of birth next to a cue), with the exact character spans of every item.
benign.jsonl: sentences with look-alikes that are not PII: order and tracking numbers, versions, prices,
dates without a birth cue, card-like numbers that fail Luhn, IBAN-like strings with wrong check digits,
SSN-like numbers with an invalid area, ISBNs, times, measurements.

Both are split train/held-out by ``edgekit.safety.dataset.split_of``. Run: python tools/build_safety_data.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import phonenumbers
from stdnum import iban, luhn

OUT = Path(__file__).resolve().parents[1] / "recipes" / "data" / "safety"
rng = random.Random(20261127)

NAMES = [
    "anna",
    "li.wei",
    "j.smith",
    "maria_garcia",
    "omar",
    "k.nakamura",
    "sven",
    "chloe.martin",
    "raj",
    "eva",
]
DOMAINS = [
    "example.com",
    "mail.example.org",
    "post.example.de",
    "example.co.uk",
    "uni-example.edu",
    "example.fr",
]


def email() -> str:
    return f"{rng.choice(NAMES)}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"


def phone() -> str:
    region = rng.choice(["US", "GB", "DE", "FR", "ES", "IN", "BR", "JP", "AU", "IT", "NL", "MX"])
    kind = rng.choice([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE])
    base = phonenumbers.example_number_for_type(region, kind)
    for _ in range(50):
        digits = str(base.national_number)
        tail = "".join(str(rng.randint(0, 9)) for _ in range(3))
        n = phonenumbers.parse(f"+{base.country_code}{digits[:-3]}{tail}")
        if phonenumbers.is_valid_number(n):
            break
    else:
        n = base
    fmt = rng.choice([phonenumbers.PhoneNumberFormat.INTERNATIONAL, phonenumbers.PhoneNumberFormat.E164])
    if region == "US" and rng.random() < 0.5:
        fmt = phonenumbers.PhoneNumberFormat.NATIONAL
    return phonenumbers.format_number(n, fmt)


def card() -> str:
    prefix = rng.choice(["4", "51", "52", "55", "2221", "37", "34", "6011"])
    length = 15 if prefix in ("34", "37") else 16
    body = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    number = body + luhn.calc_check_digit(body)
    if rng.random() < 0.5:
        return number
    if length == 15:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    sep = rng.choice([" ", "-"])
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


def digits(n: int) -> str:
    return "".join(str(rng.randint(0, 9)) for _ in range(n))


def iban_number() -> str:
    cc, bban = rng.choice([
        ("DE", lambda: "".join(str(rng.randint(0, 9)) for _ in range(18))),
        ("GB", lambda: rng.choice(["NWBK", "BARC", "MIDL"]) + digits(14)),
        ("NL", lambda: rng.choice(["ABNA", "INGB", "RABO"]) + digits(10)),
        ("AT", lambda: "".join(str(rng.randint(0, 9)) for _ in range(16))),
        ("CH", lambda: "".join(str(rng.randint(0, 9)) for _ in range(17))),
    ])  # fmt: skip
    for _ in range(100):
        b = bban()
        number = cc + iban.calc_check_digits(cc + "00" + b) + b
        if iban.is_valid(number):
            break
    return iban.format(number) if rng.random() < 0.5 else number


def ssn() -> str:
    area = rng.choice([a for a in range(1, 900) if a != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def ip() -> str:
    if rng.random() < 0.6:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return (
        ":".join(f"{rng.randint(0, 0xFFFF):x}" for _ in range(8))
        if rng.random() < 0.5
        else (f"2001:db8::{rng.randint(1, 0xFFFF):x}:{rng.randint(1, 0xFFFF):x}")
    )


MONTHS = ["January", "March", "May", "July", "September", "November"]


def dob() -> str:
    y, m, d = rng.randint(1940, 2010), rng.randint(1, 12), rng.randint(1, 28)
    return rng.choice([f"{d:02d}/{m:02d}/{y}", f"{y}-{m:02d}-{d:02d}", f"{d} {rng.choice(MONTHS)} {y}",
                       f"{rng.choice(MONTHS)} {d}, {y}", f"{d:02d}.{m:02d}.{y}"])  # fmt: skip


TEMPLATES: dict[str, list[str]] = {
    "email": ["Please write to {} if you have questions.", "Meine E-Mail-Adresse ist {}.",
              "Vous pouvez me joindre à {} demain.", "Mi correo es {}, escríbeme.", "cc: {}"],
    "phone": ["Call me at {} after six.", "Meine Nummer: {}", "Mon numéro est le {}.",
              "Llámame al {} mañana.", "Contact number {} (mobile)."],
    "payment_card": ["My card number is {} and it expires next year.", "Charge it to {} please.",
                     "Kartennummer: {}", "Le numéro de carte est {}.", "Pago con la tarjeta {}."],
    "iban": ["Please transfer the rent to {}.", "IBAN: {}", "Bitte überweise an {} bis Freitag.",
             "Mon IBAN est {}.", "Transfiere el dinero a {}."],
    "us_ssn": ["My SSN is {}.", "Social security number: {}", "Employee record: SSN {} on file.",
               "Her social security no. is {}."],
    "ip_address": ["The server at {} keeps rejecting my login.", "Connect to {} on port 22.",
                   "Die IP-Adresse meines Routers ist {}.", "Mi dirección IP es {}."],
    "date_of_birth": ["I was born on {} in Lyon.", "Date of birth: {}", "DOB {} (patient)",
                      "Geboren am {} in Köln.", "Fecha de nacimiento: {}", "Birthday: {}"],
}  # fmt: skip
MAKERS = {"email": email, "phone": phone, "payment_card": card, "iban": iban_number, "us_ssn": ssn,
          "ip_address": ip, "date_of_birth": dob}  # fmt: skip


def pii_rows(per_kind: int = 40) -> list[dict[str, object]]:
    rows = []
    for kind, make in MAKERS.items():
        for _ in range(per_kind):
            value = make()
            template = rng.choice(TEMPLATES[kind])
            text = template.format(value)
            start = template.index("{}")
            spans = [{"start": start, "end": start + len(value), "kind": kind}]
            if rng.random() < 0.25:  # a second item of another kind after it
                other = rng.choice([k for k in MAKERS if k != kind and k != "date_of_birth"])
                value2 = MAKERS[other]()
                more = f" Also: {value2}"
                spans.append({"start": len(text) + 7, "end": len(text) + 7 + len(value2), "kind": other})
                text += more
            rows.append({"text": text, "spans": spans})
    return rows


def benign_rows() -> list[dict[str, object]]:
    out: list[str] = []
    for _ in range(40):
        n = "".join(str(rng.randint(0, 9)) for _ in range(16))
        if luhn.is_valid(n):
            n = n[:-1] + str((int(n[-1]) + 1) % 10)
        out.append(rng.choice(["Order {} has shipped.", "Reference number {} for your claim.",
                               "Tracking: {}", "Bestellnummer {}"]).format(n))  # fmt: skip
    for _ in range(30):
        number = iban_number().replace(" ", "")
        bad = number[:2] + f"{(int(number[2:4]) + 1) % 100:02d}" + number[4:]
        if not iban.is_valid(bad):
            out.append(f"The example account {bad} in the manual is fake.")
    for _ in range(25):
        area = rng.choice([0, 666, 912, 987])
        out.append(f"Case {area:03d}-{rng.randint(10, 99)}-{rng.randint(1000, 9999)} was closed.")
    for _ in range(40):
        out.append(rng.choice([
            "Upgrade to version {}.{}.{} before Friday.", "The meeting is on {}/{}/20{} at noon.",
            "It costs {}.{} euros, about {} dollars.", "Train {} leaves at {}:{} from platform 3.",
            "The box is {} by {} by {} centimetres.", "We sold {} units in Q{} of 20{}.",
            "Chapter {}, page {}, line {}.", "Die Sitzung ist am {}.{}.20{} um zehn.",
            "Le colis pèse {},{} kg et coûte {} euros.", "El vuelo {} sale a las {}:{}.",
        ]).format(*(rng.randint(1, 40) for _ in range(3))))  # fmt: skip
    for _ in range(20):
        out.append(rng.choice([
            "ISBN 978-0-{}-{}-{}", "Call extension {} for support.", "Room {} on floor {}, desk {}.",
            "The score was {} to {} after {} minutes.", "Population: {} million in {} regions ({} cities).",
        ]).format(rng.randint(100, 999), rng.randint(10000, 99999), rng.randint(1, 9)))  # fmt: skip
    out += [
        "Write to the support team through the contact form.",
        "My birthday party is next Saturday.",
        "The 2024-05-01 release fixed the login bug.",
        "Born to run is a great album.",
        "He was born in the 1990s and loves jazz.",
        "Use the at sign in handles like @example.",
        "The password must have 12 characters.",
        "Version 10.0.2 added IPv6 support.",
        "Set the timeout to 3600 seconds.",
        "Our office phone hours are 9 to 5.",
    ]
    return [{"text": t, "spans": []} for t in out]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("pii.jsonl", pii_rows()), ("benign.jsonl", benign_rows())):
        seen: set[str] = set()
        with (OUT / name).open("w", encoding="utf-8") as f:
            for row in rows:
                if row["text"] in seen:
                    continue
                seen.add(str(row["text"]))
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{name}: {len(seen)} examples")


if __name__ == "__main__":
    main()
