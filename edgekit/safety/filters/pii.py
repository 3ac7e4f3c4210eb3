"""Personal data: email, phone numbers, payment cards, IBANs, US SSNs, IP addresses, dates of birth.

Structured types are confirmed by their checksums or rules before they count, so order numbers, version
strings and prices do not: cards by Luhn and a known issuer prefix, IBANs by their ISO 7064 check digits
(python-stdnum), phone numbers by phonenumbers' validity rules (international formats, and national ones of
the default region), SSNs by the SSA's area/group/serial rules, IP addresses by the ``ipaddress`` parser.
A date counts as a date of birth only with a cue nearby ("born", "DOB", "geboren", "né le", ...).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator

import phonenumbers
from stdnum import iban, luhn

from edgekit.safety.filters import Context
from edgekit.safety.taxonomy import Action, Span, Verdict

EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
)
CARD = re.compile(r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b")
DIGIT = re.compile(r"\d")
INTL_PHONE = re.compile(r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,5}\)?){1,7}")
SSN = re.compile(r"(?<![\d-])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\d-])")
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
    r"\b(born|birth|birthday|dob|d\.o\.b|geboren|geburtsdatum|geburtstag|née?|naissance|nacid[oa]|"
    r"nacimiento|cumpleaños|nato|nata)\b",
    re.IGNORECASE,
)
CARD_PREFIX = re.compile(r"^(4|5[1-5]|2[2-7]|3[47]|3[068]|6(?:011|5|4[4-9]|22)|35|62)")


def _valid_ssn(area: str, group: str, serial: str) -> bool:
    a = int(area)
    return a != 0 and a != 666 and a < 900 and group != "00" and serial != "0000"


class PiiFilter:
    """Personal data. ``action`` is the proposed action (the policy decides in the end)."""

    name = "pii"
    window = 64

    def __init__(
        self, *, action: Action = "redact", region: str = "US", types: list[str] | None = None
    ) -> None:
        self.action = action
        self.region = region
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
        for m in CARD.finditer(t):
            yield from _cards(m)
        for m in SSN.finditer(t):
            cue = SSN_CUE.search(t, max(0, m.start() - 40), m.start())
            if _valid_ssn(m.group(1), m.group(3), m.group(4)) and (m.group(2) or cue):
                yield m.start(), m.end(), "us_ssn"
        for m in DATE.finditer(t):
            if DOB_CUE.search(t, max(0, m.start() - 48), m.start()):
                yield m.start(), m.end(), "date_of_birth"
        for m in IPV4.finditer(t):
            if _is_ip(m.group()):
                yield m.start(), m.end(), "ip_address"
        for m in IPV6.finditer(t):
            if m.group().count(":") >= 2 and any(c.isalnum() for c in m.group()) and _is_ip(m.group()):
                yield m.start(), m.end(), "ip_address"
        if DIGIT.search(t):
            yield from self._phones(t)

    def _phones(self, t: str) -> Iterator[tuple[int, int, str]]:
        matcher = phonenumbers.PhoneNumberMatcher(t, self.region, leniency=phonenumbers.Leniency.VALID)
        for match in matcher:
            yield match.start, match.end, "phone"
        # The matcher rejects a number followed by more digit groups ("+44 20 7946 0958 1"): try the
        # international candidates again, cut back one group at a time.
        for m in INTL_PHONE.finditer(t):
            ends = [g.end() for g in re.finditer(r"\d+\)?", m.group())]
            for end in reversed(ends):
                try:
                    number = phonenumbers.parse(m.group()[:end], None)
                except phonenumbers.NumberParseException:
                    continue
                if phonenumbers.is_valid_number(number):
                    yield m.start(), m.start() + end, "phone"
                    break


def _ibans(m: re.Match[str]) -> Iterator[tuple[int, int, str]]:
    """An IBAN at the start of the match: the match may run on into a following number, so it is cut
    back at group boundaries until the check digits and the country's length agree."""
    text = m.group()
    for end in range(len(text), 14, -1):
        if (end == len(text) or text[end] == " ") and text[end - 1] != " " and iban.is_valid(text[:end]):
            yield m.start(), m.start() + end, "iban"
            return


def _is_card(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and bool(CARD_PREFIX.match(digits)) and luhn.is_valid(digits)


def _cards(m: re.Match[str]) -> Iterator[tuple[int, int, str]]:
    """Card numbers inside a run of digit groups: the run may hold more than the card (a number written
    right after it), so runs of whole groups are tried, longest first."""
    groups = [(g.start() + m.start(), g.end() + m.start(), g.group()) for g in re.finditer(r"\d+", m.group())]
    i = 0
    while i < len(groups):
        for j in range(len(groups), i, -1):
            if _is_card("".join(g[2] for g in groups[i:j])):
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
