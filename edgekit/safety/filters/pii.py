"""Personal data: email, phone numbers, payment cards, IBANs, US SSNs, IP addresses, dates of birth.

Structured types are confirmed by their checksums or rules before they count, so order numbers, version
strings and prices do not:

- phone numbers by phonenumbers' validity rules, in international formats (``+``, ``00``) and in the
  national formats of every region (the policy region tried first). Almost any digit run is a valid
  national number somewhere, so a national-format number also needs a phone cue nearby ("tel", "call",
  "Handy", "téléphone", "電話", ...) or phone-like writing (digit groups with separators or an area code
  in parentheses, or a trunk ``0`` in front); a bare run of digits needs a cue. Order, invoice, tracking
  and version cues, dates, ISBNs and prices rule a candidate out.
- payment cards by Luhn, 12 to 19 digits, and either a card cue ("card", "Visa", "Karte", ...), card-like
  grouping (4-4-4-4, 4-6-5, ...) or a known issuer prefix at a length that issuer uses (Visa, Mastercard,
  Amex, Discover, JCB, Diners, UnionPay, Mir, Maestro, RuPay, ...); an order or tracking cue rules it out.
- IBANs in any case, with or without spaces, by their ISO 7064 check digits and country length (stdnum).
- US SSNs by stdnum's rules (area, group, serial, known invalid numbers), with dashes or an SSN cue.
- IP addresses by the ``ipaddress`` parser, unless a version cue ("version", "v", "build", a product
  name such as "Python") comes right before.
A date counts as a date of birth only with a cue nearby: "date of birth", "DOB", "Geburtsdatum", or
"born"/"geboren"/"né" when the writer speaks of themselves or the reader ("I was born on"; not "Ada
Lovelace (born 10 December 1815)" in a pasted article).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from functools import lru_cache

import phonenumbers
from stdnum import iban, isbn, luhn
from stdnum.us import ssn as us_ssn

from edgekit.safety.filters import Context
from edgekit.safety.normalize import normalize
from edgekit.safety.taxonomy import Action, Span, Verdict

EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
)
CARD_RUN = re.compile(r"(?<![\d-])\d+(?:[ -]\d+)*(?![\d-])")
IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,30}(?![A-Za-z0-9])")
DIGIT = re.compile(r"\d")
SSN = re.compile(r"(?<![\d-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\d-])")
INTL_HEAD = re.compile(r"\+\d{1,4}[ -]?\Z")
SSN_CUE = re.compile(r"\b(ssn|social security|soc\.? sec\.?)\b", re.IGNORECASE)
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\.?\d)")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
MONTHS = (
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|"
    r"oct(?:ober)?|nov(?:ember)?|dec(?:ember)?|januar|februar|märz|mai|juni|juli|oktober|dezember|"
    r"janvier|février|mars|avril|juin|juillet|août|septembre|octobre|novembre|décembre|"
    r"enero|febrero|marzo|abril|mayo|junio|julio|agosto|septiembre|octubre|noviembre|diciembre"
)
DATE = re.compile(
    rf"\b(?:\d{{1,2}}[./-]\d{{1,2}}[./-](?:19|20)\d{{2}}|(?:19|20)\d{{2}}-\d{{2}}-\d{{2}}|"
    rf"\d{{1,2}}\.? (?:de )?(?:{MONTHS})\.?,? (?:de )?(?:19|20)\d{{2}}|"
    rf"(?:{MONTHS})\.? \d{{1,2}}(?:st|nd|rd|th)?,? (?:19|20)\d{{2}})\b",
    re.IGNORECASE,
)
DOB_CUE = re.compile(
    r"\b(birth|birthday|dob|d\.o\.b|geburtsdatum|geburtstag|naissance|nacimiento|cumpleaños)\b",
    re.IGNORECASE,
)
"""A date of birth asked for or given as such: "date of birth", "DOB:", "birthday"."""
BORN = re.compile(r"\b(born|geboren|née?|nacid[oa]|nato|nata)\b", re.IGNORECASE)
PERSONAL = re.compile(
    r"\b(i|i'm|me|my|we|our|you|your|je|suis|moi|mon|ma|ich|mein|meine|bin|yo|mi|soy|io|sono|mio|mia)\b",
    re.IGNORECASE,
)
"""With "born", a date is a date of birth when the writer speaks of themselves or the reader ("I was
born on", "your son was born"): "Ada Lovelace (born 10 December 1815)" in a pasted article is not."""

CUE_BEFORE = 40
"""Characters before a number searched for cues (within the stream's look-behind)."""
CUE_AFTER = 16


def _cues(words: str, bare: str = "") -> re.Pattern[str]:
    """Cue words (whole words, a trailing dot allowed) and ``bare`` cues matched anywhere (scripts
    without spaces). Matching runs on normalized text, where lookalike folding turns "Телефон" into
    a Latin-Cyrillic mix, so the folded spellings are added too."""
    forms: set[str] = set()
    for w in words.split("|"):
        for v in (w, w.capitalize(), w.upper()):
            forms.update((v, normalize(v).text))
    alts = "|".join(re.escape(w) for w in sorted(forms, key=len, reverse=True))
    rest = "".join(f"|{re.escape(b)}" for b in bare.split("|") if b)
    return re.compile(rf"(?:\b(?:{alts})(?![^\W\d_])\.?{rest})", re.IGNORECASE)


# Words that say "this is a number of some other kind": orders, invoices, tracking, versions, ...
OTHER_CUE = _cues(
    "order|orders|ordernr|invoice|inv|ref|reference|tracking|track|shipment|parcel|package|waybill|awb|"
    "consignment|ticket|case|booking|reservation|confirmation|transaction|txn|receipt|id|sku|serial|s/n|"
    "sn|part|model|isbn|issn|ean|upc|gtin|imei|version|ver|build|release|rev|revision|firmware|patch|"
    "customer|member|membership|policy|claim|lot|batch|po|p.o|item|article|art|ext|extension|durchwahl|"
    "poste|zip|postcode|plz|room|page|chapter|kunde|kundennummer|kundennr|bestellung|bestellnummer|"
    "bestellnr|bestell-nr|rechnung|rechnungsnummer|rechnungsnr|sendung|sendungsnummer|auftrag|"
    "auftragsnummer|vorgang|commande|facture|suivi|colis|référence|pedido|factura|seguimiento|envío|"
    "referencia|ordine|fattura|spedizione|riferimento|заказ|счет|счёт|накладная|номер заказа",
    "注文|订单|發票|发票|請求書|追跡|运单",
)
PHONE_CUE = _cues(
    "phone|phones|telephone|tel|tele|telefon|telefone|telefono|teléfono|téléphone|tél|tlf|tfn|ph|call|"
    "calls|called|calling|ring|dial|mobile|mobil|móvil|movil|mob|cell|cellphone|cellular|celular|"
    "cellulare|portable|handy|handynummer|rufnummer|telefonnummer|anrufen|ruf|ruft|fax|whatsapp|signal|"
    "telegram|sms|text|texting|hotline|helpline|contact|reach|appelez|appeler|appelle|joindre|llamar|"
    "llama|llámame|chiamare|chiama|ligar|ligue|bellen|zadzwoń|telefonu|puhelin|телефон|тел|мобильный|"
    "звоните|позвоните|τηλ|τηλέφωνο|điện thoại|my number|our number|meine nummer|unsere nummer|"
    "mon numéro|notre numéro|mi número|nuestro número|il mio numero",
    "電話|电话|携帯|手机|手機|연락처|전화|휴대폰|☎|📞|📱|هاتف|फ़ोन|फोन|โทร",
)
CARD_CUE = _cues(
    "card|cards|credit|debit|visa|mastercard|master card|amex|american express|discover|jcb|diners|"
    "maestro|unionpay|union pay|rupay|troy|elo|cc|ccn|pan|cvv|cvc|exp|expiry|expires|karte|kreditkarte|"
    "kartennummer|ec-karte|carte|cb|tarjeta|carta|cartão|kaart|kort|karta|карта|карты",
    "カード|卡",
)
VERSION_CUE = re.compile(
    r"(?:\b(?:version|versions|ver|v|release|build|rev|revision|firmware|fw|patch|update|upgrade|"
    r"upgraded|python|node|nodejs|java|jdk|chrome|chromium|firefox|safari|windows|macos|ios|"
    r"ipados|android|ubuntu|debian|fedora|centos|rhel|kernel|linux|gcc|clang|llvm|cuda|cudnn|ruby|"
    r"perl|php|golang|rust|rustc|npm|pip|django|flask|numpy|torch|pytorch|tensorflow|openssl|"
    r"nginx|apache|postgres|postgresql|mysql|redis|docker|kubernetes|k8s|"
    r"version:|versión|versão|versione|versie|wersja)\s*[:=]?\s*$|\bv$)",
    re.IGNORECASE,
)
CURRENCY = re.compile(
    r"(?:[$€£¥₹₽₩฿]|\b(?:usd|eur|gbp|chf|jpy|cny|inr|rub|aud|cad|sek|nok|dkk|pln|czk|huf|brl|mxn)\b)",
    re.IGNORECASE,
)
CURRENCY_AFTER = re.compile(
    r"\s?(?:[$€£¥₹₽₩฿%]|(?:usd|eur|gbp|chf|jpy|euros?|dollars?|pounds?|francs?|yen|rupees?|"
    r"kr|zł|units?|kg|km|m|cm|mm|g|mb|gb|tb|ms|s|x)\b)",
    re.IGNORECASE,
)

# Phone candidates: digit groups with single separators, an optional "+" or area code in parentheses.
# ASCII-only boundaries: "電話03-1234-5678まで" is a number between two CJK words.
_SEP = r"(?:[ ]?[-.][ ]?|/|[ ]|[ ]?\(|\)[ ]?)"
PHONE_CAND = re.compile(rf"(?<![A-Za-z0-9_+.\-/])(?:\+[ ]?|\(\+?)?\d+(?:{_SEP}\d+)*\)?(?![A-Za-z0-9_])")
DATE_SHAPE = re.compile(r"\d{1,2}([./-])\d{1,2}\1\d{2,4}|\d{4}([./-])\d{1,2}\2\d{1,2}")
CHECK_DIGIT_TAIL = re.compile(r"\d{4}-\d\Z")
YEAR_FIRST = re.compile(r"\d{4}\D")
YEAR_LAST = re.compile(r"\D\d{4}\Z")
SSN_SHAPE = re.compile(r"\d{3}-\d{2}-\d{4}")
THOUSANDS = re.compile(r"[1-9]\d{0,2}(?:([ .,\u202f])\d{3})(?:\1\d{3})*")
YEAR_SERIAL = re.compile(r"(?:19|20)\d\d[-/]\d{3,}")
YEARS = re.compile(r"(?<!\d)((?:1\d|20)\d\d) ?([-/]) ?((?:1\d|20)\d\d)(?!\d)")
"""Two years: 1998-2004, 2020/2021, 1861 - 1865 (a range when the second is not earlier)."""
AREA_CODE_FIRST = re.compile(r"(?:\d ?)?\(\d[\d \-]*\)[ ]?\d[\d .\-/]*")
UNCUED_SHAPES = (SSN_SHAPE, THOUSANDS, YEAR_SERIAL)
"""Shapes that are a phone number only with a cue: 123-45-6789, 8 000 000, 2024-000123."""
PHONE_MIN_DIGITS = 5
"""With a cue: the shortest national numbers (Pacific islands, Saint Helena) have five digits."""
PHONE_MIN_DIGITS_UNCUED = 7
PHONE_MAX_DIGITS = 17
MAX_REGIONS = 64
"""Full parse attempts per candidate at most. A cheap check (length, general number pattern) skips most
of the ~245 regions; on the bench a valid number needs at most ~20 attempts, an invalid one ~45."""
PREFERRED_REGIONS = (
    "US", "GB", "DE", "FR", "IN", "CN", "JP", "BR", "ES", "IT", "MX", "RU", "CA", "AU", "NL", "PL", "TR",
    "KR", "ID", "PH", "NG", "ZA", "AR", "CH", "AT", "BE", "SE", "PT", "IE",
)  # fmt: skip

# Card issuers: (IIN range low, high, lengths). A bare number (no cue, no grouping) needs one of these.
_IIN: tuple[tuple[str, str, tuple[int, ...]], ...] = (
    ("4", "4", (13, 16, 19)),  # Visa
    ("51", "55", (16,)), ("2221", "2720", (16,)),  # Mastercard
    ("34", "34", (15,)), ("37", "37", (15,)),  # American Express
    ("6011", "6011", (16, 17, 18, 19)), ("644", "649", (16, 17, 18, 19)), ("65", "65", (16, 17, 18, 19)),
    ("3528", "3589", (15, 16, 17, 18, 19)), ("2131", "2131", (15,)), ("1800", "1800", (15,)),  # JCB
    ("300", "305", (14, 15, 16, 17, 18, 19)), ("3095", "3095", (14, 16)),  # Diners Club
    ("36", "36", (14, 15, 16, 17, 18, 19)), ("38", "39", (14, 15, 16, 17, 18, 19)),
    ("62", "62", (16, 17, 18, 19)), ("81", "81", (16, 17, 18, 19)),  # UnionPay
    ("2200", "2204", (16, 17, 18, 19)),  # Mir
    ("5018", "5018", tuple(range(12, 20))), ("5020", "5020", tuple(range(12, 20))),  # Maestro
    ("5038", "5038", tuple(range(12, 20))), ("5893", "5893", tuple(range(12, 20))),
    ("6304", "6304", tuple(range(12, 20))), ("6759", "6759", tuple(range(12, 20))),
    ("6761", "6763", tuple(range(12, 20))), ("6771", "6771", tuple(range(12, 20))),
    ("60", "60", (16,)), ("6521", "6522", (16,)), ("508", "508", (16,)), ("353", "353", (16,)),  # RuPay
    ("356", "356", (16,)),
    ("9792", "9792", (16,)),  # Troy
    ("506099", "506198", (16, 18, 19)), ("650002", "650027", (16, 18, 19)),  # Verve
    ("507865", "507964", (16, 18, 19)),
    ("4011", "4011", (16,)), ("5066", "5067", (16,)), ("509", "509", (16,)), ("6277", "6277", (16,)),  # Elo
    ("6362", "6363", (16,)), ("650", "650", (16,)), ("6516", "6516", (16,)), ("6550", "6550", (16,)),
    ("606282", "606282", (16, 19)), ("3841", "3841", (16, 19)),  # Hipercard
    ("5019", "5019", (16,)), ("636", "636", (16, 17, 18, 19)),  # Dankort, InterPayment
)  # fmt: skip


def _known_issuer(digits: str) -> bool:
    n = len(digits)
    return any(n in lengths and low <= digits[: len(low)] <= high for low, high, lengths in _IIN)


def _card_grouping(groups: list[str], seps: set[str]) -> bool:
    """Written the way cards are printed: 4-4-4-4(-3), 4-4-4(-1..4), Amex 4-6-5, Diners 4-6-4."""
    if len(groups) < 3 or len(seps) != 1:
        return False
    sizes = [len(g) for g in groups]
    if sizes in ([4, 6, 5], [4, 6, 4]):
        return True
    return all(s == 4 for s in sizes[:-1]) and 1 <= sizes[-1] <= 4 and 3 <= len(sizes) <= 5


def _cue(
    t: str, start: int, end: int, positive: re.Pattern[str], other: re.Pattern[str] | None = None
) -> str:
    """'pos' when a ``positive`` cue is the closest cue before the number (or right after it), 'neg' when
    an other-number cue (order, invoice, version, ..., or ``other``) is closest before it, '' when there
    is none."""
    lo = max(0, start - CUE_BEFORE)
    before = t[lo:start]
    pos = max((m.end() for m in positive.finditer(before)), default=-1)
    neg = max((m.end() for p in (OTHER_CUE, other) if p is not None for m in p.finditer(before)), default=-1)
    if neg > pos:
        return "neg"
    if pos >= 0:
        return "pos"
    after = t[end : end + CUE_AFTER]
    if positive.match(after.lstrip(" ,:;-([")):
        return "pos"
    return ""


def _valid_ssn(area: str, group: str, serial: str) -> bool:
    return us_ssn.is_valid(f"{area}-{group}-{serial}")


class PiiFilter:
    """Personal data. ``action`` is the proposed action (the policy decides in the end)."""

    name = "pii"
    window = 64

    def __init__(
        self, *, action: Action = "redact", region: str = "US", types: list[str] | None = None
    ) -> None:
        self.action = action
        self.region = region.upper()
        self.types = set(types) if types else None

    def check(self, text: str, context: Context) -> list[Verdict]:
        norm = context.norm(text)
        found: list[Span] = []
        taken: list[tuple[int, int]] = []
        for start, end, kind in self._matches(norm.text):
            if self.types is not None and kind not in self.types:
                continue
            if any(start < e and s < end for s, e in taken):
                continue  # the first, more specific type wins (a card is not also a phone number)
            taken.append((start, end))
            o_start, o_end = norm.original_span(start, end)
            found.append(Span(o_start, o_end, kind))
        if not found:
            return []
        kinds = sorted({s.kind for s in found})
        reason = f"personal data: {', '.join(kinds)} ({len(found)} span{'s' * (len(found) > 1)})"
        return [
            Verdict("pii", self.action, tuple(sorted(found, key=lambda s: s.start)), reason, filter=self.name)
        ]

    def _matches(self, t: str) -> Iterator[tuple[int, int, str]]:
        for m in EMAIL.finditer(t):
            yield m.start(), m.end(), "email"
        for m in IBAN.finditer(t):
            yield from _ibans(m)
        if not DIGIT.search(t):
            return
        for m in CARD_RUN.finditer(t):
            yield from _cards(t, m)
        for m in SSN.finditer(t):
            if INTL_HEAD.search(t, max(0, m.start() - 6), m.start()):
                continue  # "+992 372 12 3456": the national part of an international phone number
            cue = SSN_CUE.search(t, max(0, m.start() - 40), m.start())
            if _valid_ssn(m.group(1), m.group(3), m.group(4)) and (m.group(2) == "-" or cue):
                yield m.start(), m.end(), "us_ssn"
        for m in DATE.finditer(t):
            if _date_of_birth(t, m.start()):
                yield m.start(), m.end(), "date_of_birth"
        for m in IPV4.finditer(t):
            if _is_ip(m.group()) and not _version_before(t, m.start()):
                yield m.start(), m.end(), "ip_address"
        for m in IPV6.finditer(t):
            if m.group().count(":") >= 2 and any(c.isalnum() for c in m.group()) and _is_ip(m.group()):
                yield m.start(), m.end(), "ip_address"
        yield from self._phones(t)

    def _phones(self, t: str) -> Iterator[tuple[int, int, str]]:
        for m in PHONE_CAND.finditer(t):
            found = _phone(t, m.start(), m.group(), self.region)
            if found is not None:
                yield m.start() + found[0], m.start() + found[1], "phone"


def _phone(t: str, start: int, cand: str, region: str) -> tuple[int, int] | None:
    """The span (relative to ``cand``) of a valid phone number that ``cand`` is, or None."""
    digits = re.sub(r"\D", "", cand)
    if len(digits) < PHONE_MIN_DIGITS:
        return None
    if cand.lstrip("(").startswith("+"):
        # International: the "+" says it is a phone number; the number may run on into more digit
        # groups ("+44 20 7946 0958 1"), so it is cut back one group at a time.
        ends = [g.end() for g in re.finditer(r"\d+\)?", cand)]
        for end in reversed(ends):
            if _valid(cand[:end], None):
                return (0, end)
        return None
    lo, hi = 0, len(cand)
    if cand.endswith(")") and cand.count(")") > cand.count("("):
        hi -= 1
    if cand.startswith("(") and ")" not in cand[:hi]:
        lo += 1
    elif cand.startswith("(") and cand.endswith(")") and cand.count("(") == cand.count(")") == 1:
        lo, hi = 1, hi - 1  # a number in parentheses, not an area code: (17751783)
    number = cand[lo:hi]
    if not _phone_like(t, start + lo, start + hi, number, digits):
        return None
    intl = digits[2:] if digits.startswith("00") else digits[3:] if digits.startswith("011") else ""
    if intl and _valid("+" + intl, None):  # an international call prefix instead of the "+"
        return (lo, hi)
    if _valid_somewhere(number, digits, region):
        return (lo, hi)
    return None


def _phone_like(t: str, start: int, end: int, cand: str, digits: str) -> bool:
    """Context and writing that make a national-format digit run a phone number rather than an order,
    invoice or tracking number, a date, a price, a version or an ISBN."""
    n = len(digits)
    if n > PHONE_MAX_DIGITS or _isbn(cand, digits) or t[end : end + 2] in ("-X", "-x"):
        return False
    if CURRENCY.search(t, max(0, start - 5), start) or CURRENCY_AFTER.match(t, end):
        return False
    cue = _cue(t, start, end, PHONE_CUE, CARD_CUE)
    if cue == "neg":
        return False
    date = DATE_SHAPE.fullmatch(cand)
    if date and (cue != "pos" or YEAR_LAST.search(cand) or YEAR_FIRST.match(cand)):
        return False  # 12.03.2024, 2024-03-12; with a phone cue "20.12.34" may be a number
    seps = re.findall(r"\D+", cand)
    dotted = bool(seps) and all(s.strip() == "." for s in seps)
    if dotted and (_version_before(t, start) or any(len(g) == 1 for g in re.findall(r"\d+", cand))):
        return False  # 1.2.3.4, 3.11.7.1, version 18.21.35 (an IP address was taken earlier)
    if cue == "pos":
        return True
    if n < PHONE_MIN_DIGITS_UNCUED or any(p.fullmatch(cand) for p in UNCUED_SHAPES):
        return False
    if CHECK_DIGIT_TAIL.search(cand) or _year_pair(cand):  # 693696111-8, 1998-2004, 2020/2021
        return False
    if start >= 2 and t[start - 1] == "," and t[start - 2].isdigit():
        return False  # the end of a larger number: 46,307 (2005)
    groups = re.findall(r"\d+", cand)
    kinds = {s.strip() for s in seps}
    if (
        ("." in kinds and len(kinds) > 1)
        or cand.count("/") > 1
        or (len(groups) > 5 and max(map(len, groups)) <= 2)
    ):
        return False  # 40.7128 -74.0060, 1/2/3, 04 12 23 31 38 45
    if "(" in cand and not _area_code_first(cand):
        return False  # 307 (2005), 10-8 (19-12): a figure and a note, not an area code
    if seps:  # digit groups with separators, or an area code in parentheses
        return not dotted or (n >= 8 and len(groups) >= 3)  # not a decimal number: 103.04878
    return digits[0] == "0" and digits[1] != "0" and 9 <= n <= 11  # a trunk 0: 0612345678


def _date_of_birth(t: str, start: int) -> bool:
    lo = max(0, start - 48)
    if DOB_CUE.search(t, lo, start):
        return True
    cues = [m.start() for m in BORN.finditer(t, lo, start)]
    return bool(cues) and PERSONAL.search(t, max(0, cues[-1] - 32), cues[-1]) is not None


def _year_pair(cand: str) -> bool:
    return any(m[2] == "/" or int(m[1]) <= int(m[3]) for m in YEARS.finditer(cand))


def _area_code_first(cand: str) -> bool:
    """Parentheses around the area code, first or after a one-digit trunk prefix, with the subscriber
    number after them: (555) 123-4567, (030) 1234567, (0-612) 34567, 8 (912) 345-67-89."""
    return AREA_CODE_FIRST.fullmatch(cand) is not None


def _isbn(cand: str, digits: str) -> bool:
    """A hyphenated ISBN-13 (978/979) or ISBN-10 with a valid check digit."""
    groups = cand.split("-")
    if (len(digits), len(groups)) in ((10, 4), (13, 5)):
        return all(g.isdigit() for g in groups) and isbn.is_valid(cand)
    return False


def _valid(number: str, region: str | None) -> bool:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(parsed)


@lru_cache(maxsize=8)
def _regions(first: str) -> tuple[tuple[str, frozenset[int], str, re.Pattern[str] | None], ...]:
    """Regions in the order they are tried, each with what a cheap pre-check needs: its national numbers'
    possible lengths, its national prefix, and its general number pattern (None where the national
    prefix rules are too involved for the pre-check: the full parse decides there)."""
    order = [first, *PREFERRED_REGIONS, *sorted(phonenumbers.SUPPORTED_REGIONS)]
    seen: set[str] = set()
    out = []
    for region in order:
        if region in seen or region not in phonenumbers.SUPPORTED_REGIONS:
            continue
        seen.add(region)
        md = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if md is None or md.general_desc is None:
            continue
        lengths = frozenset(
            (md.general_desc.possible_length or ()) + (md.general_desc.possible_length_local_only or ())
        )
        prefix = md.national_prefix or ""
        simple = (
            md.national_prefix_for_parsing or ""
        ) == prefix and md.national_prefix_transform_rule is None
        pattern = md.general_desc.national_number_pattern
        out.append((region, lengths, prefix, re.compile(pattern) if simple and pattern else None))
    return tuple(out)


def _valid_somewhere(cand: str, digits: str, region: str) -> bool:
    tries = 0
    for code, lengths, prefix, pattern in _regions(region):
        if pattern is not None:
            nsns = [digits]
            if prefix and digits.startswith(prefix):
                nsns.append(digits[len(prefix) :])
            if not any(len(x) in lengths and pattern.fullmatch(x) for x in nsns):
                continue
        tries += 1
        if tries > MAX_REGIONS:
            return False
        if _valid(cand, code):
            return True
    return False


def _version_before(t: str, start: int) -> bool:
    """A version cue right before a number: "version 1.2.3.4", "v10.0.0.1", "Python 3.11.7.1"."""
    before = t[max(0, start - 24) : start]
    return VERSION_CUE.search(before) is not None


def _ibans(m: re.Match[str]) -> Iterator[tuple[int, int, str]]:
    """An IBAN at the start of the match: the match may run on into a following number or word, so it is
    cut back at group boundaries until the check digits and the country's length agree."""
    text = m.group()
    for end in range(len(text), 14, -1):
        if (
            (end == len(text) or text[end] in " -")
            and text[end - 1] not in " -"
            and iban.is_valid(text[:end])
        ):
            yield m.start(), m.start() + end, "iban"
            return


def _cards(t: str, m: re.Match[str]) -> Iterator[tuple[int, int, str]]:
    """Card numbers inside a run of digit groups: the run may hold more than the card (a number written
    right after it), so runs of whole groups are tried, longest first. The whole run may count by its
    grouping; a part of it only by a card cue or a known issuer prefix."""
    base = m.start()
    if base and t[base - 1] == "+":
        return  # an international phone number
    groups = [(g.start() + base, g.end() + base, g.group()) for g in re.finditer(r"\d+", m.group())]
    if len(groups) > 24 or sum(len(g[2]) for g in groups) < 12:
        return
    cue = None
    i = 0
    while i < len(groups):
        for j in range(len(groups), i, -1):
            digits = "".join(g[2] for g in groups[i:j])
            if not 12 <= len(digits) <= 19 or not luhn.is_valid(digits):
                continue
            if cue is None:
                cue = _cue(t, m.start(), m.end(), CARD_CUE)
            if cue == "neg":
                return
            whole = i == 0 and j == len(groups)
            seps = {t[a[1] : b[0]] for a, b in zip(groups[i:j], groups[i + 1 : j], strict=False)}
            if (
                cue == "pos"
                or _known_issuer(digits)
                or (whole and _card_grouping([g[2] for g in groups], seps))
            ):
                yield groups[i][0], groups[j - 1][1], "payment_card"
                i = j - 1
                break
        i += 1


def _is_ip(s: str) -> bool:
    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True
