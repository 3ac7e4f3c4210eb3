"""PII and secrets pattern benchmark on independently generated values (no model, no labeled set).

    python tools/bench_pii.py [--region US] [--json out.json] [--pii-file OLD.py] [--secrets-file OLD.py]

Positives are built from outside sources, never from the filters' own acceptance rules:

- phone numbers: ``phonenumbers.example_number_for_type`` for every region phonenumbers knows, mobile and
  fixed line, written in INTERNATIONAL, NATIONAL and E164 format, in sentence templates with a phone cue
  ("Call me at", "Handy:", "電話") and without one;
- payment cards: the networks' published test numbers (Visa, Mastercard, Amex, Discover, JCB, Diners,
  UnionPay, Maestro), and for lengths no test number is published for (JCB 15, Maestro 12-19, Mir,
  RuPay) numbers from the network's IIN range with a Luhn check digit (stdnum), written plain and grouped;
- IBANs: a random BBAN per country in the SWIFT registry formats stdnum ships, check digits from
  ISO 7064 Mod 97-10, kept only when stdnum accepts them; upper, lower, mixed case, compact and spaced;
- e-mail addresses, IPv4 and IPv6 addresses, US SSNs (stdnum's rules), provider API keys.

Negatives: version strings, invoice, order and tracking numbers (half of the order ids pass Luhn on
purpose), ISBNs, dates, prices, look-alike words for keys. An item is found when a span of its kind
covers it; a negative is a false hit when the text has any finding. Targets: recall >= 0.95 per type,
false hits <= 1% on negatives. ``--pii-file``/``--secrets-file`` load the filter class from another file
(e.g. ``git show HEAD:edgekit/safety/filters/pii.py > /tmp/old_pii.py``) to compare revisions.
Randomness is seeded (``--seed``).
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import random
import re
import string
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import phonenumbers  # noqa: E402
from phonenumbers import PhoneNumberFormat, PhoneNumberType  # noqa: E402
from stdnum import ean, iban, isbn, luhn  # noqa: E402
from stdnum.iso7064 import mod_97_10  # noqa: E402

from edgekit.safety.filters import Context  # noqa: E402

Item = tuple[str, str, str, tuple[int, int] | None]
"""(group, kind, text, span of the value in the text or None for a negative)."""

PHONE_CUED = [
    "Call me at {} tomorrow.",
    "Tel.: {}",
    "Meine Handynummer ist {}.",
    "Mon numéro de téléphone est le {}.",
    "Mi teléfono es {}, llámame.",
    "電話番号は{}です。",
    "Телефон: {}",
    "You can reach me on my mobile, {}.",
]
PHONE_PLAIN = [
    "Here it is: {} (ask for Sam).",
    "{} is the one I gave you.",
    "Write this down - {} - thanks.",
    "Schreib dir das auf: {}",
]
CARD_CUED = ["Card number: {}", "Pay with my card {}, please.", "Kreditkarte {} bitte belasten."]
CARD_PLAIN = ["Here it is: {}.", "{} is the one I use.", "Use this: {}"]
IBAN_T = ["IBAN {}", "Please wire it to {} by Friday.", "Mein Konto: {}"]
IP_T = ["connect to {} over ssh", "IP {} is blocked", "The server at {} is down.", "ping {}"]
SSN_T = ["SSN {}", "My social security number is {}.", "SSN: {}"]
EMAIL_T = ["Write to {} today.", "Mail: {}", "Vous pouvez me joindre à {} demain."]

# Published test card numbers (Stripe, Adyen, PayPal/Braintree, network documentation).
TEST_CARDS: dict[str, list[str]] = {
    "visa": ["4111111111111111", "4012888888881881", "4242424242424242", "4000056655665556", "4222222222222"],
    "mastercard": ["5555555555554444", "5105105105105100", "2223003122003222", "5200828282828210"],
    "amex": ["378282246310005", "371449635398431", "378734493671000"],
    "discover": ["6011111111111117", "6011000990139424", "6011000400000000"],
    "jcb16": ["3530111333300000", "3566002020360505", "3566111111111113"],
    "diners": ["30569309025904", "38520000023237", "36227206271667", "3056930009020004"],
    "unionpay": ["6200000000000005", "6200000000000047", "6205500000000000004", "6250941006528599"],
    "maestro": ["6759649826438453", "6799990100000000019", "6771798021000008"],
}
# Lengths with no published test number: IIN-range prefix, random body, Luhn check digit.
GENERATED_CARDS: dict[str, list[tuple[str, int]]] = {
    "jcb15": [("2131", 15), ("1800", 15), ("3528", 15), ("3589", 15)],
    "maestro": [(p, n) for n in range(12, 20) for p in ("5018", "6304", "6759", "6761")],
    "mir": [("2200", 16), ("2201", 16), ("2202", 16), ("2204", 16), ("2200", 19)],
    "rupay": [("6521", 16), ("6522", 16), ("6070", 16), ("5085", 16)],
}
VERSION_T = [
    "Upgrade to version {}.",
    "v{} is out",
    "Python {} fixes it.",
    "release {} notes",
    "build {} passed",
    "Firmware {} available",
]
BARE_T = ["Use {} when you write to us.", "It is {} this time.", "{} was assigned."]
DATE_T = [
    "Meet on {d:02d}.{m:02d}.{y}",
    "Due {y}-{m:02d}-{d:02d}",
    "On {m:02d}/{d:02d}/{y}",
    "Die Sitzung ist am {d}.{m}.{y} um zehn.",
    "Deadline {d}/{m}/{y}",
]
NUMBERS_T = [
    "Chapter 15, page 34, line 6.",
    "Room 355 on floor 83378, desk 9.",
    "The score was 197 to 27914.",
    "Population: 648 million in 75173 regions.",
    "Train 34 leaves at 14:30 from platform 3.",
    "We sold 1200 units in Q3 of 2024.",
    "Call extension 4411 for support.",
]
SECRET_NEG = [
    "the skeleton key",
    "sk-short",
    "sk-proj-management-plan-for-the-quarter",
    "see the sk-learn-compatible-estimators-guide page",
    "task-project-overview-2024-final",
    "ghp_short",
    "hf_transfer is enabled",
    "github_pat_docs explain it",
    "AKIA is a prefix",
    "xoxb-short",
    "glpat-docs",
    "npm_config_cache=/tmp",
    "gsk_test",
    "SG.example.com",
    "r8_short",
    "AIza is how Google keys start",
    "https://example.com/a:b@c",
    "sk-ant-api03-is-the-prefix-of-anthropic-keys",
    "pplx-api-docs-for-developers-and-teams",
]


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _span(template: str, value: str) -> tuple[str, tuple[int, int]]:
    start = template.index("{}")
    return template.replace("{}", value, 1), (start, start + len(value))


def _group(digits: str) -> str:
    if len(digits) == 15:
        return f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    if len(digits) == 14:
        return f"{digits[:4]} {digits[4:10]} {digits[10:]}"
    return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))


def _card(rng: random.Random, prefix: str, n: int) -> str:
    body = prefix + _rand(rng, string.digits, n - len(prefix) - 1)
    return body + luhn.calc_check_digit(body)


def _ibans(rng: random.Random) -> list[tuple[str, str]]:
    """(country, IBAN) for every country in stdnum's registry data."""
    out = []
    data = (Path(iban.__file__).parent / "iban.dat").read_text(encoding="utf-8")
    for line in data.splitlines():
        m = re.match(r'^([A-Z]{2}) .*bban="([^"]+)"', line)
        if not m:
            continue
        country, bban = m.groups()
        upper = string.ascii_uppercase
        alphabet = {"n": string.digits, "a": upper, "c": upper + string.digits}
        for _ in range(200):  # some countries add a national check: retry until stdnum accepts one
            body = "".join(_rand(rng, alphabet[k], int(n)) for n, k in re.findall(r"(\d+)!([nac])", bban))
            check = mod_97_10.calc_check_digits(body + country)
            number = country + check + body
            if iban.is_valid(number):
                out.append((country, number))
                break
    return out


def _phones() -> list[tuple[str, str, str, str]]:
    """(region, type, format, text) for each example number."""
    formats = {
        "international": PhoneNumberFormat.INTERNATIONAL,
        "national": PhoneNumberFormat.NATIONAL,
        "e164": PhoneNumberFormat.E164,
    }
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for tname, ptype in (("mobile", PhoneNumberType.MOBILE), ("fixed", PhoneNumberType.FIXED_LINE)):
            number = phonenumbers.example_number_for_type(region, ptype)
            if number is None:
                continue
            for fname, fmt in formats.items():
                out.append((region, tname, fname, phonenumbers.format_number(number, fmt)))
    return out


def build(seed: int) -> tuple[list[Item], list[Item]]:
    """(PII items, secrets items)."""
    rng = random.Random(seed)
    items: list[Item] = []

    def add(group: str, kind: str, template: str, value: str) -> None:
        text, span = _span(template, value)
        items.append((group, kind, text, span))

    for i, (_region, _tname, fname, value) in enumerate(_phones()):
        add(f"phone/{fname}/cue", "phone", PHONE_CUED[i % len(PHONE_CUED)], value)
        add(f"phone/{fname}/no_cue", "phone", PHONE_PLAIN[i % len(PHONE_PLAIN)], value)

    cards = [(net, num) for net, nums in TEST_CARDS.items() for num in nums]
    cards += [(net, _card(rng, p, n)) for net, specs in GENERATED_CARDS.items() for p, n in specs]
    for i, (net, num) in enumerate(cards):
        assert luhn.is_valid(num), (net, num)
        for form, value in (("plain", num), ("grouped", _group(num))):
            add(f"payment_card/{net}/{form}/cue", "payment_card", CARD_CUED[i % len(CARD_CUED)], value)
            add(f"payment_card/{net}/{form}/no_cue", "payment_card", CARD_PLAIN[i % len(CARD_PLAIN)], value)

    for i, (_country, number) in enumerate(_ibans(rng)):
        spaced = iban.format(number)
        mixed = number[:2].lower() + number[2:]
        for form, value in (
            ("upper", number),
            ("lower", number.lower()),
            ("spaced", spaced),
            ("spaced_lower", spaced.lower()),
            ("mixed", mixed),
        ):
            add(f"iban/{form}", "iban", IBAN_T[i % len(IBAN_T)], value)

    names = ["anna", "j.smith", "chloe.martin", "omar", "li.wei", "raj_k", "eva+news"]
    domains = ["example.com", "mail.example.org", "post.example.de", "uni-example.edu", "example.co.uk"]
    for i in range(30):
        value = f"{rng.choice(names)}{rng.randint(1, 99)}@{rng.choice(domains)}"
        add("email", "email", EMAIL_T[i % len(EMAIL_T)], value)

    for i in range(40):
        v4 = str(ipaddress.IPv4Address(rng.randint(0x01000000, 0xDFFFFFFF)))
        add("ip_address/v4", "ip_address", IP_T[i % len(IP_T)], v4)
        v6 = ipaddress.IPv6Address(rng.getrandbits(128) & ~(0xFFFF << 64) if i % 2 else rng.getrandbits(128))
        add("ip_address/v6", "ip_address", IP_T[i % len(IP_T)], v6.compressed)

    for i in range(40):
        area = rng.choice([a for a in range(1, 900) if a != 666])
        value = f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"
        add("us_ssn", "us_ssn", SSN_T[i % len(SSN_T)], value)

    # Negatives: nothing in these texts is personal data.
    def neg(group: str, text: str) -> None:
        items.append((f"negative/{group}", "", text, None))

    for _ in range(30):
        v = ".".join(str(rng.randint(0, 20)) for _ in range(rng.choice([3, 4])))
        neg("version", rng.choice(VERSION_T).format(v))
    for v in ("1.2.3.4", "10.0.0.1", "3.11.7.1", "10.0.19041.1", "18.21.35", "2.14.0.12"):
        neg("version", f"version {v}")
    neg("version", "v10.0.0.1 is the latest")
    neg("version", "Python 3.11.7.1 is installed")

    for _ in range(30):
        year, serial = rng.randint(2015, 2026), rng.randint(1, 999999)
        neg(
            "invoice",
            rng.choice(
                [
                    "Invoice INV-{y}-{s:06d} is due.",
                    "Rechnung Nr. {y}-{s:06d}",
                    "Invoice {y}{s:06d} attached.",
                    "Facture n° {y}{s:06d}",
                    "Invoice no. {y}/{s:06d}",
                ]
            ).format(y=year, s=serial),
        )
    order_t = [
        "Order #{}",
        "Your order {} has shipped.",
        "Order ID: {}",
        "Bestellnummer {}",
        "order_id={}",
        "Numéro de commande : {}",
        "Pedido {} confirmado.",
        "Ref. {}",
    ]
    for i in range(120):
        n = rng.choice([10, 12, 16])
        body = _rand(rng, string.digits, n - 1)
        body = str(rng.randint(1, 9)) + body[1:]
        value = body + (luhn.calc_check_digit(body) if i % 2 else str(rng.randint(0, 9)))
        neg(f"order_{n}", order_t[i % len(order_t)].format(value))
    for i in range(60):  # ids with no cue at all: a 16-digit one that passes Luhn can be a card
        n = (10, 12, 16)[i % 3]
        value = str(rng.randint(1, 9)) + _rand(rng, string.digits, n - 1)
        neg(f"bare_id_{n}", BARE_T[i % len(BARE_T)].format(value))
    for i in range(40):
        fedex, dhl = _rand(rng, string.digits, 12), _rand(rng, string.digits, 10)
        usps = "9400" + _rand(rng, string.digits, 18)
        ups = "1Z" + _rand(rng, string.ascii_uppercase + string.digits, 6) + _rand(rng, string.digits, 10)
        usps_grouped = " ".join(usps[k : k + 4] for k in range(0, 22, 4))
        texts = [
            f"Tracking number {fedex}",
            f"DHL tracking {dhl}",
            f"Sendungsnummer {usps}",
            f"Tracking: {ups}",
            f"USPS {usps_grouped}",
        ]
        neg("tracking", texts[i % len(texts)])
    for _ in range(25):
        body = rng.choice(["978", "979"]) + _rand(rng, string.digits, 9)
        code = isbn.format(body + ean.calc_check_digit(body))  # hyphenated by the ISBN agency ranges
        neg("isbn", f"ISBN {code}")
        neg("isbn", f"See {code} in the catalogue")
        b10 = rng.choice("0123") + _rand(rng, string.digits, 8)  # English and German language groups
        check = sum((10 - k) * int(d) for k, d in enumerate(b10)) * 10 % 11  # ISBN-10: sum(w*d) = 0 mod 11
        neg("isbn", f"Book {isbn.format(b10 + ('X' if check == 10 else str(check)))}")
    for _ in range(30):
        d, m, y = rng.randint(1, 28), rng.randint(1, 12), rng.randint(1990, 2030)
        neg("date", rng.choice(DATE_T).format(d=d, m=m, y=y))
    for _ in range(30):
        a, c = rng.randint(1, 99999), rng.randint(0, 99)
        prices = [
            f"It costs ${a:,}.{c:02d}",
            f"Preis: {a:,} €".replace(",", "."),
            f"EUR {a} {c:02d}0",
            f"about {a} {c:02d}0 dollars",
            f"Total: {a}.{c:02d} USD",
            f"Le colis coûte {a},{c:02d} euros",
        ]
        neg("price", rng.choice(prices))
    for s in NUMBERS_T:
        neg("numbers", s)
    for i in range(60):  # numbers in running text, written the ways people write them
        big, y1 = rng.randint(1_000_000, 99_999_999), rng.randint(1950, 2020)
        lat, lon = rng.uniform(-80, 80), rng.uniform(-170, 170)
        texts = [
            f"The region has {big:,} residents.".replace(",", " "),
            f"Die Stadt hat {big:,} Einwohner.".replace(",", "."),
            f"GPS {lat:.4f} {lon:.4f}",
            f"Coordinates: {lat:.5f}, {lon:.5f}",
            f"He worked there {y1}-{y1 + rng.randint(1, 9)}.",
            f"Seasons {y1}/{y1 + 1}/{y1 + 2} were the best.",
            f"Winning numbers {' '.join(f'{rng.randint(1, 49):02d}' for _ in range(6))}",
            f"Revenue grew to {big:,} dollars.",
            f"Meet at {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d} in room {rng.randint(100, 999)}.",
            f"The file is {big // 10:,} bytes long.".replace(",", " "),
        ]
        neg("prose_numbers", texts[i % len(texts)])

    secrets = _secret_items(rng)
    return items, secrets


def _secret_items(rng: random.Random) -> list[Item]:
    b62 = string.ascii_letters + string.digits
    url = b62 + "_-"
    pos = [
        ("openai_key", "sk-proj-" + _rand(rng, url, 27)),  # 35 characters in all
        ("openai_key", "sk-proj-" + _rand(rng, url, 48)),
        ("openai_key", "sk-proj-" + _rand(rng, url, 74) + "T3BlbkFJ" + _rand(rng, url, 74)),
        ("openai_key", "sk-svcacct-" + _rand(rng, url, 40)),
        ("openai_key", "sk-" + _rand(rng, b62, 48)),
        ("anthropic_key", "sk-ant-api03-" + _rand(rng, url, 93) + "AA"),
        ("anthropic_key", "sk-ant-admin01-" + _rand(rng, url, 40)),
        ("github_token", "ghp_" + _rand(rng, b62, 36)),
        ("github_token", "gho_" + _rand(rng, b62, 36)),
        ("github_token", "github_pat_" + _rand(rng, b62, 22) + "_" + _rand(rng, b62, 59)),
        ("aws_access_key", "AKIA" + _rand(rng, string.ascii_uppercase + "234567", 16)),
        ("google_api_key", "AIza" + _rand(rng, url, 35)),
        ("stripe_key", "sk_live_" + _rand(rng, b62, 24)),
        ("stripe_key", "rk_live_" + _rand(rng, b62, 99)),
        ("huggingface_token", "hf_" + _rand(rng, b62, 34)),
        ("slack_token", "xoxb-" + _rand(rng, string.digits, 12) + "-" + _rand(rng, b62, 24)),
        ("gitlab_token", "glpat-" + _rand(rng, url, 20)),
        ("npm_token", "npm_" + _rand(rng, b62, 36)),
        ("pypi_token", "pypi-AgEIcHlwaS5vcmc" + _rand(rng, url, 60)),
        ("groq_key", "gsk_" + _rand(rng, b62, 52)),
        ("xai_key", "xai-" + _rand(rng, b62, 80)),
        ("openrouter_key", "sk-or-v1-" + _rand(rng, "0123456789abcdef", 64)),
        ("sendgrid_key", "SG." + _rand(rng, url, 22) + "." + _rand(rng, url, 43)),
        ("digitalocean_token", "dop_v1_" + _rand(rng, "0123456789abcdef", 64)),
        ("replicate_token", "r8_" + _rand(rng, b62, 37)),
        ("perplexity_key", "pplx-" + _rand(rng, b62, 48)),
    ]
    items: list[Item] = []
    for kind, key in pos:
        for template in ("key = {}", 'export TOKEN="{}"', "use {} for the API"):
            text, span = _span(template, key)
            items.append((f"secret/{kind}", kind, text, span))
    for text in SECRET_NEG:
        items.append(("negative/secrets", "", text, None))
    return items


def _load(path: Path | None, default_module: str, cls: str) -> Any:
    if path is None:
        module = importlib.import_module(default_module)
    else:
        spec = importlib.util.spec_from_file_location(f"_bench_{cls}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return getattr(module, cls)


def score(items: list[Item], f: Any) -> dict[str, Any]:
    ctx = Context()
    groups: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses: dict[str, list[str]] = defaultdict(list)
    false_hits: list[str] = []
    negatives = 0
    for group, kind, text, span in items:
        spans = [s for v in f.check(text, ctx) for s in v.spans]
        if span is None:
            negatives += 1
            hit = bool(spans)
            groups[group][0] += hit
            groups[group][1] += 1
            if hit:
                false_hits.append(f"{text!r} -> {[(s.kind, text[s.start : s.end]) for s in spans]}")
            continue
        found = any(s.kind == kind and s.start <= span[0] and s.end >= span[1] for s in spans)
        for key, table in ((group, groups), (kind, kinds)):
            table[key][0] += found
            table[key][1] += 1
        if not found and len(misses[group]) < 5:
            misses[group].append(text)
    neg_hits = sum(h for g, (h, _) in groups.items() if g.startswith("negative/"))
    return {
        "recall_per_type": {k: round(h / n, 4) for k, (h, n) in sorted(kinds.items())},
        "items_per_type": {k: n for k, (_, n) in sorted(kinds.items())},
        "per_group": {g: {"rate": round(h / n, 4), "items": n} for g, (h, n) in sorted(groups.items())},
        "negatives": negatives,
        "false_hit_rate": round(neg_hits / max(negatives, 1), 4),
        "false_hits": false_hits,
        "misses": dict(misses),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--region", default="US", help="policy region of the PII filter")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--pii-file", type=Path, help="load PiiFilter from this file instead")
    ap.add_argument("--secrets-file", type=Path, help="load SecretsFilter from this file instead")
    ap.add_argument("--verbose", action="store_true", help="print misses and false hits")
    args = ap.parse_args()
    t0 = time.perf_counter()
    pii_items, secret_items = build(args.seed)
    pii = _load(args.pii_file, "edgekit.safety.filters.pii", "PiiFilter")(region=args.region)
    secrets = _load(args.secrets_file, "edgekit.safety.filters.secrets", "SecretsFilter")()
    t1 = time.perf_counter()
    report = {"pii": score(pii_items, pii)}
    t2 = time.perf_counter()
    report["secrets"] = score(secret_items, secrets)
    report["timing"] = {
        "build_s": round(t1 - t0, 2),
        "pii_s": round(t2 - t1, 2),
        "pii_ms_per_text": round(1000 * (t2 - t1) / len(pii_items), 3),
        "secrets_s": round(time.perf_counter() - t2, 2),
    }
    for name in ("pii", "secrets"):
        r = report[name]
        print(f"== {name}: recall per type (target >= 0.95)")
        for k, v in r["recall_per_type"].items():
            print(f"  {k:<22} {v:.3f}  ({r['items_per_type'][k]} items)")
        print("   per group:")
        for g, v in r["per_group"].items():
            print(f"  {g:<44} {v['rate']:.3f}  ({v['items']})")
        rate = r["false_hit_rate"]
        print(f"  false-hit rate on negatives: {rate:.4f} of {r['negatives']} (target <= 0.01)")
        if args.verbose:
            for g, texts in r["misses"].items():
                for text in texts:
                    print(f"  miss {g}: {text!r}")
            for text in r["false_hits"]:
                print(f"  false hit: {text}")
    print(f"timing: {report['timing']}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
