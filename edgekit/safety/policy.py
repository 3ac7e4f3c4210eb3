"""Safety policy files (TOML): an action per category, overrides per enforcement point, filter settings,
per-language classifier thresholds and banned sequences.

Validated with pydantic at this edge; unknown categories, layers or keys are errors that name the file,
line and key and suggest the closest valid one. ``recipes/safety/default.toml`` is a complete example.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator

from edgekit.errors import InputError
from edgekit.safety.taxonomy import CATEGORIES, HAZARDS, LAYERS, Action, Layer
from edgekit.tomlfile import line_of, parse_toml, read_toml, validate


class SafetyPolicyError(InputError):
    default_hint = "Fix the key named above; see recipes/safety/default.toml for a complete example."


_CODES = (
    "aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de dv "
    "dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id ie ig "
    "ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu lv mg mh "
    "mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru "
    "rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug "
    "uk ur uz ve vi vo wa wo xh yi yo za zh zu"
)
ISO_639_1 = frozenset(_CODES.split())


def _language_codes(codes: list[str]) -> list[str]:
    for code in codes:
        if code not in ISO_639_1:
            raise ValueError(f"'{code}' is not an ISO 639-1 language code (two lowercase letters, like 'en')")
    return codes


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_category_fields: dict[str, Any] = {c: (Action | None, None) for c in CATEGORIES}
Actions: type[BaseModel] = create_model(
    "Actions", __config__=ConfigDict(extra="forbid", frozen=True), **_category_fields
)
"""One optional action per category; a category left out keeps the filter's proposed action."""

Layers: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Layers",
    __config__=ConfigDict(extra="forbid", frozen=True),
    **{layer: (Actions | None, None) for layer in LAYERS},
)


class PiiSettings(_Strict):
    region: str = Field(default="US", min_length=2, max_length=2)
    """Region tried first for phone numbers in national format (every region is tried after it)."""
    types: (
        list[Literal["email", "phone", "payment_card", "iban", "us_ssn", "ip_address", "date_of_birth"]]
        | None
    ) = None
    """Only these kinds (all when unset)."""

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        import phonenumbers

        if v.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"'{v}' is not a region code phonenumbers knows (ISO 3166-1 alpha-2, like 'US')")
        return v.upper()


class LanguageSettings(_Strict):
    supported: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    min_chars: int = Field(default=20, ge=1)
    min_confidence: float = Field(default=0.8, ge=0, le=1)

    @field_validator("supported")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        return _language_codes(v)


class ClassifierSettings(_Strict):
    enabled: bool = True
    head: Path | None = None
    """Head file (.npz from tools/train_safety_classifier.py); default: the shipped one."""
    threshold: float | None = Field(default=None, gt=0, lt=1)
    """Hazard score (1 - p(benign)) at or above which a text is flagged and escalated; default: the
    head's own, chosen on its calibration split from a false-positive budget."""
    block_threshold: float | None = Field(default=None, gt=0, lt=1)
    """Hazard score at or above which a flag takes the category's action (block for most); between
    ``threshold`` and this, a flag escalates. Default: the head's own."""
    thresholds: dict[str, float] = {}
    """Flag thresholds per language (ISO 639-1 code): lower means stricter."""
    max_chars: int | None = Field(default=None, ge=16)
    """Longer texts are classified in windows of whole sentences up to this size (default: the window
    the heads were trained on); the worst one counts."""
    languages: list[str] = ["en"]
    """Languages where a classifier flag takes the category's action. Elsewhere a ``block`` becomes
    ``escalate`` (the safer path). Empty: trust it in every language."""
    stream: Literal["end", "sentence"] = "end"
    """Streamed output: judge the whole answer when it ends (no extra hold-back; a verdict can end the
    stream but not withdraw what was shown), or each sentence before it is shown (text then appears a
    sentence at a time)."""

    @field_validator("thresholds")
    @classmethod
    def _probabilities(cls, v: dict[str, float]) -> dict[str, float]:
        for lang, t in v.items():
            if not 0 < t < 1:
                raise ValueError(f"threshold for '{lang}' must be between 0 and 1, got {t}")
        _language_codes(list(v))
        return v

    @field_validator("languages")
    @classmethod
    def _codes(cls, v: list[str]) -> list[str]:
        return _language_codes(v)


class DecodingSettings(_Strict):
    banned: list[str] = []
    """Phrases that stop generation when they appear (category banned_sequence)."""


class AuditSettings(_Strict):
    salt_env: str = "EDGEKIT_AUDIT_SALT"
    """Environment variable with the salt for audit hashes; unset: a random salt per process."""
    file: Path | None = None
    """Append audit records to this JSON-lines file (relative: to the policy file); unset: keep the
    latest 1,000 in memory (``Guard.audit.records``)."""


class SafetyPolicy(_Strict):
    version: Literal[1] = 1
    actions: Actions = Field(default_factory=Actions)  # type: ignore[valid-type]
    layers: Layers = Field(default_factory=Layers)  # type: ignore[valid-type]
    pii: PiiSettings = PiiSettings()
    language: LanguageSettings = LanguageSettings()
    classifier: ClassifierSettings = ClassifierSettings()
    decoding: DecodingSettings = DecodingSettings()
    audit: AuditSettings = AuditSettings()
    path: Path | None = Field(default=None, exclude=True)

    def action_for(self, category: str, layer: Layer, proposed: Action) -> Action:
        """The action this policy takes for ``category`` at ``layer``: the layer's override, else the
        category's action, else what the filter proposed."""
        override = getattr(self.layers, layer, None)
        if override is not None and getattr(override, category, None) is not None:
            action: Action = getattr(override, category)
            return action
        return getattr(self.actions, category, None) or proposed

    @classmethod
    def load(cls, path: Path) -> SafetyPolicy:
        text, data = read_toml(Path(path), "safety policy", SafetyPolicyError)
        return cls._validate(data, text, Path(path))

    @classmethod
    def parse(cls, text: str, path: Path = Path("safety.toml")) -> SafetyPolicy:
        return cls._validate(parse_toml(text, path, SafetyPolicyError), text, path)

    @classmethod
    def _validate(cls, data: dict[str, Any], text: str, path: Path) -> SafetyPolicy:
        _hazard_codes(data, text, path)
        policy: SafetyPolicy = validate(cls, {**data, "path": path}, text, path, SafetyPolicyError)
        head = policy.classifier.head
        if head is not None and not head.is_absolute():
            fixed = policy.classifier.model_copy(update={"head": path.parent / head})
            policy = policy.model_copy(update={"classifier": fixed})
        audit = policy.audit.file
        if audit is not None and not audit.is_absolute():
            policy = policy.model_copy(
                update={"audit": policy.audit.model_copy(update={"file": path.parent / audit})}
            )
        return policy


def _hazard_codes(data: dict[str, Any], text: str, path: Path) -> None:
    """Llama Guard's codes (S1..S14) are not keys, their names are: say which name a code means."""
    tables = [("actions", data.get("actions"))]
    layers = data.get("layers")
    if isinstance(layers, dict):
        tables += [(f"layers.{k}", v) for k, v in layers.items()]
    for where, table in tables:
        for key in table if isinstance(table, dict) else ():
            if key.upper() in HAZARDS:
                loc = [*where.split("."), key]
                raise SafetyPolicyError(
                    f"{path}:{line_of(text, loc)}: {where}.{key}: hazard codes are not keys",
                    f"Use the category name: {key} is '{HAZARDS[key.upper()]}'.",
                )


def default_policy_path() -> Path:
    from importlib import resources

    shipped = resources.files("edgekit") / "_data" / "safety" / "default.toml"
    if shipped.is_file():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[2] / "recipes" / "safety" / "default.toml"


def load_policy(path: Path | str | None = None) -> SafetyPolicy:
    """Read a safety policy file (the shipped default when ``path`` is None)."""
    return SafetyPolicy.load(Path(path) if path is not None else default_policy_path())
