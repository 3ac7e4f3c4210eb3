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
    """Region whose national phone formats are recognised (international '+' formats always are)."""
    types: (
        list[Literal["email", "phone", "payment_card", "iban", "us_ssn", "ip_address", "date_of_birth"]]
        | None
    ) = None
    """Only these kinds (all when unset)."""


class LanguageSettings(_Strict):
    supported: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    min_chars: int = Field(default=20, ge=1)
    min_confidence: float = Field(default=0.8, ge=0, le=1)


class ClassifierSettings(_Strict):
    enabled: bool = True
    head: Path | None = None
    """Head weights (.npz from tools/train_safety_head.py); default: the shipped head."""
    threshold: float = Field(default=0.5, gt=0, lt=1)
    """Harm probability at or above which a text is flagged, for languages without their own threshold."""
    thresholds: dict[str, float] = {}
    """Per language (ISO 639-1 code): lower means stricter."""
    max_chars: int = Field(default=400, ge=16)
    """Longer texts are classified in windows of whole sentences up to this size; the worst one counts."""
    languages: list[str] = ["en"]
    """Languages where a classifier flag takes the category's action. Elsewhere a ``block`` becomes
    ``escalate`` (the safer path): all-MiniLM-L6-v2 is an English encoder, and on the shipped held-out
    split it flagged most benign Spanish text. Empty: trust it in every language."""
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
            if not (2 <= len(lang) <= 3 and lang.isalpha() and lang.islower()):
                raise ValueError(f"'{lang}' is not an ISO 639-1 language code (like 'en' or 'de')")
        return v


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
