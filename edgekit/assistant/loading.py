"""Loading the cascade's engines: a Router built from a policy, its models from models.lock and its
remote from the environment. It lives here, above the cascade, because it loads models through the public
API (the cascade itself only routes between what it is given)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgekit.api import load
from edgekit.api import remote as remote_model
from edgekit.cascade.budget import BudgetLedger
from edgekit.cascade.policy import Policy, resolve_policy
from edgekit.cascade.router import Router
from edgekit.cascade.trace import TraceStore
from edgekit.config import Settings
from edgekit.errors import EdgekitError


def load_router(
    policy_path: Path | str | None = None,
    *,
    traces: bool = True,
    ledger: BudgetLedger | None = None,
    shadow: Path | str | None = None,
) -> Router:
    """Build a Router from a policy file (or a shipped policy's name): local models from models.lock, the
    remote from its env vars. ``ledger``: the budget ledger to share (copies of one router must).
    ``shadow``: a policy (file or shipped name) judged on every request too, never acted on."""
    policy = Policy.load(resolve_policy(policy_path))
    shadow_policy = None if shadow is None else Policy.load(resolve_policy(shadow))
    settings = Settings.from_env()
    local = [load(t.model) for t in policy.local_tiers]
    checks: dict[str, Any] = {}
    remote = None
    tier = policy.remote_tier
    try:
        for t in policy.local_tiers:
            if t.cross_check is not None:
                checks[t.name] = load(t.cross_check.model)
        if tier is not None and os.environ.get(tier.base_url_env):
            remote = remote_model(
                os.environ[tier.base_url_env],
                tier.model,
                api_key_env=tier.api_key_env,
                timeout=tier.timeout_s.get(policy.latency_class, 30.0),
            )
    except EdgekitError:
        for m in [*local, *checks.values()]:
            m.close()
        raise
    ledger = ledger or BudgetLedger(policy.budget, settings.cache_dir.parent / "budget.json")
    return Router(
        policy,
        local=local,
        remote=remote,
        traces=TraceStore() if traces else None,
        ledger=ledger,
        cross_check=checks,
        shadow=shadow_policy,
    )
