"""Shadow mode: judge every routed request by another policy too, and record what it would have done.

The request is answered as the router's own policy says; the shadow policy is never acted on. It is run
through the same decision code (``Router.route``, dry run) on what the request already produced: its
gates see the same request, its first local tier judges the first tier's answer (and the cross-check
answer when one was generated). Nothing is generated for the shadow, so what it would need and the
request did not produce (a local answer the gates skipped, a cross-check answer never asked for, extra
self-consistency samples) makes its verdict ``unknown`` rather than a guess.

The verdict goes into the request's trace (``shadow``); ``edgekit trace stats --compare`` projects the
shadow policy's remote share, tokens, cost and latency from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from edgekit.cascade.policy import Policy, PolicyError
from edgekit.runtime.types import ChatMessage, Completion

if TYPE_CHECKING:
    from edgekit.cascade.gates import Request
    from edgekit.cascade.router import ChatModel, Router, Seen


class _NotSeen(Exception):
    """The shadow needs an answer the request did not produce."""


class _Replay:
    """Stands in for a local model: returns the answer the request already produced, or raises."""

    def __init__(self, real: ChatModel) -> None:
        self.real = real
        self.name = real.name
        self.answer: Completion | None = None

    @property
    def n_ctx(self) -> int:
        return int(self.real.n_ctx)

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        return self.real.prompt_tokens(messages)

    def chat(self, msgs: Sequence[ChatMessage], **params: Any) -> Completion:
        """The recorded answer, once: a second call (self-consistency samples) asks for a new one."""
        answer, self.answer = self.answer, None
        if answer is None:
            raise _NotSeen
        return answer

    def close(self) -> None:
        """The real model belongs to the router that acts."""


class Shadow:
    def __init__(self, policy: Policy, primary: Router) -> None:
        from edgekit.cascade.router import Router

        first, mine = primary.policy.local_tiers[0], policy.local_tiers[0]
        if mine.model != first.model:
            raise PolicyError(
                f"{policy.path}: the shadow policy's first tier runs {mine.model!r}, the router's "
                f"{first.model!r}",
                "A shadow policy judges the answers the router produced: give its first tier the same model.",
            )
        if mine.cross_check and (not first.cross_check or mine.cross_check.model != first.cross_check.model):
            raise PolicyError(
                f"{policy.path}: the shadow policy's cross-check model is not the router's",
                "Use the router's cross-check model in the shadow policy, or none.",
            )
        self.policy = policy
        self.name = str(policy.path.name if policy.path else "shadow")
        self._first = _Replay(primary.local[0])
        self._check = _Replay(primary.cross_check[first.name]) if first.cross_check else None
        others = [_Replay(m) for m in primary.local[1:]]
        while len(others) < len(policy.local_tiers) - 1:
            others.append(_Replay(primary.local[0]))
        cross = {mine.name: self._check} if mine.cross_check and self._check else {}
        self.router = Router(
            policy,
            local=[self._first, *others[: len(policy.local_tiers) - 1]],
            cross_check=cross,
            embed=primary.embed,
        )

    def decide(self, request: Request, msgs: list[ChatMessage], seen: Seen) -> dict[str, Any]:
        """{"policy", "route": local | remote | unknown, "detail": its route or why it is unknown}."""
        _, escalation, pinned = self.router.decide(request)
        if pinned:
            return self._verdict("local", "a gate pins it on device")
        if escalation is not None:
            return self._verdict("remote", escalation)
        self._first.answer = seen.first
        if self._check is not None:
            self._check.answer = seen.other
        try:
            result = self.router.route(
                msgs,
                dry_run=True,
                max_tokens=request.max_tokens,
                output_type=request.output_type,
                safety=request.safety,
            )
        except _NotSeen:
            return self._verdict("unknown", "it needs an answer this request did not produce")
        finally:
            self._first.answer = None
            if self._check is not None:
                self._check.answer = None
        if result.route.startswith("local:"):
            return self._verdict("local", result.route)
        return self._verdict("remote", result.escalation_reason or result.route)

    def _verdict(self, route: str, detail: str) -> dict[str, Any]:
        return {"policy": self.name, "route": route, "detail": detail}
