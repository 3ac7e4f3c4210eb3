"""Cascade policy files (TOML): tiers, acceptance thresholds, gates, budget, determinism per route.

Validated with pydantic at this edge. Errors name the file, the key path and, for misspelt keys, the
closest valid key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgekit.errors import InputError
from edgekit.tomlfile import parse_toml, read_toml, validate

LatencyClass = Literal["fast", "standard", "escalation"]
DEFAULT_TIMEOUTS: dict[LatencyClass, float] = {"fast": 5.0, "standard": 30.0, "escalation": 60.0}


class PolicyError(InputError):
    default_hint = "Fix the key named above; see recipes/cascade/default.toml for a complete example."


class _Strict(BaseModel):
    # nan and inf in a policy (timeouts, costs, thresholds) fail here, naming the key, not mid-request.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Acceptance(_Strict):
    """A local answer is accepted only if every given threshold holds."""

    min_mean_prob: float | None = Field(default=None, ge=0, le=1)
    min_min_prob: float | None = Field(default=None, ge=0, le=1)
    max_mean_entropy: float | None = Field(default=None, ge=0)
    min_tokens: int | None = Field(default=None, ge=0)
    learned: str | None = None
    """A learned acceptance model (JSON from tools/train_router_gate.py), relative to the policy file."""
    min_score: float | None = Field(default=None, ge=0, le=1)
    """With ``learned``: the least predicted probability that the local answer is right [default: the
    threshold calibrated with the model, else 0.5]."""


class SelfConsistency(_Strict):
    """Probe for high-risk routes: sample the question again and require the answers to agree.

    Costs ``samples`` extra local generations, so set it on the tiers (or policies) where a wrong answer
    is expensive. Answers agree when their first lines match after lowercasing and dropping punctuation.
    """

    samples: int = Field(default=3, ge=1, le=16)
    temperature: float = Field(default=0.8, gt=0)
    min_agreement: float = Field(default=0.6, gt=0, le=1)


class CrossCheck(_Strict):
    """A second opinion: another local model answers the same request, and the local answer's agreement
    with it (overlap of the words the two answers add beyond the prompt) becomes a signal.

    Costs one more local generation per request that reaches the tier. A learned acceptance model trained
    with the ``agreement`` feature needs it; ``min_agreement`` also works on its own.
    """

    model: str
    """models.lock name or path of the second local model."""
    min_agreement: float | None = Field(default=None, ge=0, le=1)
    accept: Acceptance | None = None
    """Keep the second model's answer when the tier's own is rejected, if it passes these thresholds (a
    ``learned`` model here sees the second answer's signals and its agreement with the first): a local
    tier before the remote that costs no generation when the first answer was not cut off."""


class Tier(_Strict):
    name: str
    kind: Literal["local", "remote"]
    model: str
    """models.lock name or path (local); model id at the endpoint (remote)."""
    accept: Acceptance = Acceptance()
    self_consistency: SelfConsistency | None = None
    cross_check: CrossCheck | None = None
    base_url_env: str = "EDGEKIT_REMOTE_URL"
    api_key_env: str = "EDGEKIT_REMOTE_API_KEY"
    timeout_s: dict[LatencyClass, Annotated[float, Field(gt=0)]] = Field(
        default_factory=lambda: dict(DEFAULT_TIMEOUTS)
    )
    retries: int = Field(default=2, ge=0, le=10)


class RouteDefaults(_Strict):
    """Determinism controls per route: temperature and seed used when the request does not set them."""

    temperature: float = Field(default=0.2, ge=0)
    seed: int | None = 0
    max_tokens: int = Field(default=256, ge=1)


class Budget(_Strict):
    max_remote_tokens_per_request: int = Field(default=2048, gt=0)
    max_remote_tokens_per_day: int = Field(default=200_000, gt=0)
    cost_per_1k_tokens: float = Field(default=0.0, ge=0)


class GateSpec(_Strict):
    model_config = ConfigDict(extra="allow", frozen=True)
    kind: str
    """Registered gate name (see edgekit.cascade.gates.REGISTRY) or 'module:Class'."""


class Policy(_Strict):
    version: Literal[1] = 1
    latency_class: LatencyClass = "standard"
    defaults: RouteDefaults = RouteDefaults()
    tiers: list[Tier] = Field(min_length=1)
    gates: list[GateSpec] = []
    budget: Budget = Budget()
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _tiers_make_sense(self) -> Policy:
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError(f"tier names must be unique, got {names}")
        if self.tiers[0].kind != "local":
            raise ValueError("the first tier must be local (tiny model first)")
        if any(t.kind == "remote" for t in self.tiers[:-1]):
            raise ValueError("a remote tier can only be the last tier")
        if any(t.kind == "remote" and (t.cross_check or t.self_consistency) for t in self.tiers):
            raise ValueError("cross_check and self_consistency apply to local tiers only")
        return self

    def beside(self, name: str) -> Path:
        """A file a policy names (a learned model), relative to the policy file unless absolute."""
        path = Path(name)
        return path if path.is_absolute() or self.path is None else self.path.parent / path

    @property
    def local_tiers(self) -> list[Tier]:
        return [t for t in self.tiers if t.kind == "local"]

    @property
    def remote_tier(self) -> Tier | None:
        return self.tiers[-1] if self.tiers[-1].kind == "remote" else None

    @classmethod
    def load(cls, path: Path) -> Policy:
        text, data = read_toml(path, "policy file", PolicyError)
        return cls._validate(data, text, path)

    @classmethod
    def parse(cls, text: str, path: Path = Path("policy.toml")) -> Policy:
        return cls._validate(parse_toml(text, path, PolicyError), text, path)

    @classmethod
    def _validate(cls, data: dict[str, Any], text: str, path: Path) -> Policy:
        if "preference" in data:
            raise PolicyError(
                f"{path}: 'preference' is no longer a policy key (nothing ever read it)",
                "Delete the line. What it named is explicit now: gates escalate, cross_check.min_agreement "
                "escalates disputes, and an answer that fails its schema is never accepted.",
            )
        policy: Policy = validate(cls, {**data, "path": path}, text, path, PolicyError)
        return policy


def shipped_policies() -> Path:
    """The folder of shipped cascade policies (``recipes/cascade``)."""
    from importlib import resources

    shipped = resources.files("edgekit") / "_data" / "cascade"
    if shipped.is_dir():
        return Path(str(shipped))
    return Path(__file__).resolve().parents[2] / "recipes" / "cascade"


def default_policy_path() -> Path:
    return shipped_policies() / "default.toml"


def resolve_policy(name_or_path: Path | str | None) -> Path:
    """A policy file path; a bare name without suffix (``cross-check``) names a shipped policy."""
    if name_or_path is None:
        return default_policy_path()
    path = Path(name_or_path)
    if path.suffix or path.exists() or len(path.parts) != 1:
        return path
    shipped = shipped_policies() / f"{path.name}.toml"
    if not shipped.is_file():
        names = ", ".join(sorted(p.stem for p in shipped_policies().glob("*.toml")))
        hint = f"Shipped policies: {names}; or give a file path."
        raise PolicyError(f"no shipped cascade policy named {path.name!r}", hint)
    return shipped
