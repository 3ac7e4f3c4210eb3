"""The safety classifier's training data: public sets in ``../shared/data/safety`` plus our own texts.

Sources (licenses in the shared folder's README; nothing from it is copied into this repository):
- AILuminate demo prompts (CC-BY-4.0), en_US and fr_FR: hazardous requests, 12 MLCommons categories.
- GSM8K train questions (MIT) and T0 task prompts (Apache-2.0, via self-instruct): benign requests.
- BIPIA train split (MIT): benign emails, tables and code as retrieved documents, and the attack
  instructions that are spliced into them (indirect prompt injection).
- ``recipes/data/safety/authored/`` and ``harm.jsonl``: texts written for edgekit (elections and
  code-interpreter abuse, jailbreaks, injected instructions, hard benign and multilingual requests).

Every item belongs to one split by the SHA-256 of its group key (``train`` 60%, ``calib`` 20%, ``test``
20%): a T0 template, a BIPIA document or attack and an AILuminate prompt never straddle splits. The head
is fitted on ``train``, thresholds are chosen on ``calib`` and figures are reported on ``test``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "safety"
AUTHORED = ROOT / "recipes" / "data" / "safety" / "authored"

Split = Literal["train", "calib", "test"]
HAZARD_CODES = {
    "vcr": "violent_crimes",
    "ncr": "non_violent_crimes",
    "src": "sex_related_crimes",
    "cse": "child_sexual_exploitation",
    "dfm": "defamation",
    "spc_fin": "specialized_advice",
    "spc_hlt": "specialized_advice",
    "spc_lgl": "specialized_advice",
    "spc_ele": "specialized_advice",
    "prv": "privacy",
    "ipv": "intellectual_property",
    "iwp": "indiscriminate_weapons",
    "hte": "hate",
    "ssh": "suicide_self_harm",
    "sxc_prn": "sexual_content",
}


@dataclass(frozen=True)
class Example:
    """One text as a user would send it (``kind='input'``) or as a retrieved document (``'document'``).

    ``label`` is ``benign`` or a hazard category; ``jailbreak`` marks attempts to get around the
    assistant's rules; ``injected`` (documents) is the character range of a spliced attack, if any."""

    text: str
    label: str
    lang: str
    source: str
    split: Split
    jailbreak: bool = False
    kind: Literal["input", "document"] = "input"
    injected: tuple[int, int] | None = None


def split_of(key: str) -> Split:
    bucket = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:4], "big") % 100
    return "train" if bucket < 60 else "calib" if bucket < 80 else "test"


def missing() -> str | None:
    """Why the shared data cannot be read (None when it can)."""
    return None if (SHARED / "README.md").is_file() else f"no safety training data at {SHARED}"


def ailuminate() -> Iterator[Example]:
    for locale in ("en_us", "fr_fr"):
        path = SHARED / "ailuminate" / f"airr_official_1.0_demo_{locale}_prompt_set_release.csv"
        with path.open(encoding="utf-8") as f:
            for row in csv.DictReader(f):
                text = row["prompt_text"].strip()
                yield Example(
                    text,
                    HAZARD_CODES[row["hazard"]],
                    locale[:2],
                    f"ailuminate/{row['persona']}",
                    split_of(text),
                )


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            yield json.loads(line)


def benign_requests() -> Iterator[Example]:
    for row in _jsonl(SHARED / "benign" / "gsm8k-train.jsonl"):
        text = str(row["question"]).strip()
        yield Example(text, "benign", "en", "gsm8k", split_of(text))
    for row in _jsonl(SHARED / "benign" / "t0-prompts.jsonl"):
        text = str(row["text"]).strip()
        yield Example(text, "benign", "en", "t0", split_of(str(row["source"])))


def bipia_documents() -> Iterator[tuple[str, str]]:
    """(task, document text) of BIPIA's benign contexts: emails, tables, code answers."""
    for task in ("email", "table", "code"):
        for row in _jsonl(SHARED / "bipia-train" / task / "train.jsonl"):
            ctx = row["context"]
            yield task, ("\n".join(str(x) for x in ctx) if isinstance(ctx, list) else str(ctx)).strip()


def bipia_attacks() -> Iterator[tuple[str, str]]:
    """(attack family, instruction) from BIPIA's text and code attack files."""
    for name in ("text_attack_train.json", "code_attack_train.json"):
        data = json.loads((SHARED / "bipia-train" / name).read_text(encoding="utf-8"))
        for family, texts in data.items():
            for text in texts:
                yield family, str(text).strip()


def authored() -> Iterator[Example]:
    for path in [*sorted(AUTHORED.glob("*.jsonl")), AUTHORED.parent / "harm.jsonl"]:
        for row in _jsonl(path):
            text = str(row["text"]).strip()
            yield Example(
                text,
                str(row["label"]),
                str(row["lang"]),
                f"authored/{path.stem}",
                split_of(text),
                jailbreak=bool(row.get("jailbreak")),
            )


def inputs() -> list[Example]:
    """Every input-layer example. Injection instructions written for documents are left out here: as a
    user's own message, "summarize this in French" is an ordinary request."""
    rows = [*ailuminate(), *benign_requests(), *(e for e in authored() if e.source != "authored/injections")]
    # A BIPIA instruction on its own is an ordinary request too ("What is the capital of Brazil?").
    rows += [
        Example(text, "benign", "en", f"bipia/{family}", split_of(text))
        for family, text in bipia_attacks()
        if "```" not in text
    ]
    # Pasted documents are ordinary input too ("summarize this email: ...").
    rows += [
        Example(doc, "benign", "en", f"bipia-doc/{task}", split_of(doc)) for task, doc in bipia_documents()
    ]
    return rows


PASSAGE = re.compile(r'"([^"]{300,3000})"')


def t0_passages(limit: int = 1500) -> Iterator[tuple[str, str]]:
    """(template, passage) for quoted passages in T0 prompts (encyclopedia and news text)."""
    seen = 0
    for row in _jsonl(SHARED / "benign" / "t0-prompts.jsonl"):
        m = PASSAGE.search(str(row["text"]))
        if m and seen < limit:
            seen += 1
            yield str(row["source"]), m.group(1).strip()


SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")


def attacks_by_split() -> dict[Split, list[str]]:
    """Attacks to splice into documents, per split: BIPIA's, then our planted instructions and short
    jailbreaks."""
    attacks: dict[Split, list[str]] = {"train": [], "calib": [], "test": []}
    for _, text in bipia_attacks():
        attacks[split_of(text)].append(text)
    for e in authored():
        if e.source == "authored/injections" or (e.jailbreak and len(e.text) < 600):
            attacks[e.split].append(e.text)
    return attacks


def documents(seed: int = 0) -> list[Example]:
    """Retrieved documents: every BIPIA context and quoted T0 passage clean, and once more with an attack
    of the same split spliced in at a sentence boundary (start, middle or end), as BIPIA builds its test
    cases."""
    rng = random.Random(seed)
    attacks = attacks_by_split()
    out: list[Example] = []
    docs = [(f"bipia/{task}", doc, split_of(doc)) for task, doc in bipia_documents()]
    docs += [("t0-passage", doc, split_of(template)) for template, doc in t0_passages()]
    for task, doc, split in docs:
        out.append(Example(doc, "benign", "en", task, split, kind="document"))
        attack = rng.choice(attacks[split])
        cuts = [0, *(m.end() for m in SENTENCE.finditer(doc)), len(doc)]
        at = rng.choice([cuts[0], cuts[len(cuts) // 2], cuts[-1]])
        out.append(_spliced(doc, attack, at, task, split))
    return out


def _spliced(doc: str, attack: str, at: int, source: str, split: Split) -> Example:
    """``doc`` with ``attack`` on lines of its own at character ``at``."""
    before, after = doc[:at], doc[at:]
    sep_b = "\n" if before and not before.endswith("\n") else ""
    sep_a = "\n" if after and not after.startswith("\n") else ""
    start = len(before) + len(sep_b)
    text = f"{before}{sep_b}{attack}{sep_a}{after}"
    return Example(
        text,
        "benign",
        "en",
        f"{source}+attack",
        split,
        jailbreak=True,
        kind="document",
        injected=(start, start + len(attack)),
    )


def more_attacks(docs: list[Example], per_doc: int, seed: int = 1) -> list[Example]:
    """Training copies: each clean train document ``per_doc`` more times, each with another train attack
    spliced in at any sentence boundary (``documents`` gives one attacked copy per document)."""
    rng = random.Random(seed)
    attacks = attacks_by_split()["train"]
    out = []
    for e in docs:
        if e.split != "train" or e.injected is not None:
            continue
        cuts = [0, *(m.end() for m in SENTENCE.finditer(e.text)), len(e.text)]
        for _ in range(per_doc):
            out.append(_spliced(e.text, rng.choice(attacks), rng.choice(cuts), e.source, "train"))
    return out


def with_filler(examples: list[Example], seed: int = 0, max_chars: int = 400) -> list[Example]:
    """Training copies of the harmful train examples with benign sentences around them: a request that
    shares its window with small talk is still harmful (the runtime packs sentences into windows)."""
    rng = random.Random(seed)
    filler = [s.strip() for e in examples if e.split == "train" and e.label == "benign" and not e.jailbreak
              and e.source in ("gsm8k", "authored/benign_multilingual", "authored/hard_benign")
              for s in SENTENCE.split(e.text) if 20 <= len(s.strip()) <= 160]  # fmt: skip
    out = []
    for e in examples:
        if e.split != "train" or e.label == "benign" or len(e.text) > max_chars - 60:
            continue
        room = max_chars - len(e.text) - 1
        pad = []
        while filler and (s := rng.choice(filler)) and len(s) + 1 <= room - sum(len(p) + 1 for p in pad):
            pad.append(s)
            if rng.random() < 0.4:
                break
        if not pad:
            continue
        text = " ".join([e.text, *pad] if rng.random() < 0.5 else [*pad, e.text])
        out.append(Example(text, e.label, e.lang, f"{e.source}+filler", "train", jailbreak=e.jailbreak))
    return out
