"""``Assistant``: the cascade, the safety guard, schema enforcement and tools as one object.

How one request runs (``chat``):
1. Messages are screened by the guard: user messages at the ``input`` layer, tool results and documents
   at the ``context`` layer. A blocked input raises ``SafetyBlockedError``; a blocked document is replaced
   by a notice. Values the policy redacts become stable placeholders (``[EMAIL_1]``) in every message,
   earlier answers included, so no model, tier or trace sees them.
2. The engine answers: the cascade router (its safety gate reads the guard's verdicts, handed over with
   the request) or one model.
3. The answer passes the ``output`` layer (on whichever tier answered), the placeholders are put back for
   the user, and a schema answer is parsed (a tool call's arguments pass the ``tool_call`` layer).
4. Everything that happened is on the returned ``Answer``: route, reasons, findings, value, trace id.

``complete`` continues a prompt as plain text (the legacy completions API): the prompt passes the input
layer like a user message, the continuation the output layer; a cascade continues on its first local tier
(routing judges chat answers, and a remote tier may not continue text at all).

Streaming contract: nothing shown is withdrawn. A cascade decides before anything is shown; one model
streams through the guard's hold-back buffer.

Thread-safe: with several engine copies (``copies`` in ``open``) as many requests run at once; each
call takes a free copy (a stream keeps it until it ends or is closed).
"""

from __future__ import annotations

import json
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgekit.assistant.answer import Answer, Finding
from edgekit.assistant.engine import CountsTokens, Engine
from edgekit.assistant.privacy import Placeholders, StreamRestorer
from edgekit.cascade.router import Router, RouteResult
from edgekit.cascade.trace import new_trace_id
from edgekit.errors import InputError
from edgekit.files import ProgressFn, no_progress
from edgekit.runtime.types import ChatMessage, Chunk, Completion, collect, estimate_tokens, normalize_messages
from edgekit.safety.guard import Decision, Guard, SafetyBlockedError
from edgekit.safety.taxonomy import Action, strictest

if TYPE_CHECKING:
    from edgekit.assistant.tools import ToolRun
    from edgekit.schema import CompiledSchema, Tool, ToolCall

WITHHELD = "[document withheld by the safety policy]"
ToolChoice = Literal["auto", "required"] | str
"""'auto': the model may answer without a tool; 'required': it must call one; a name: that tool."""


@dataclass(frozen=True)
class Screened:
    """A request after the guard: what the engine sees, and what the guard found."""

    messages: list[ChatMessage]
    signal: dict[str, str]
    findings: tuple[Finding, ...]
    sent: tuple[str, ...]
    """Placeholder tokens the request carries."""


class Assistant:
    """Build with ``Assistant.open(...)``, or around engines you loaded:
    ``Assistant(router_or_model, guard=edgekit.Guard())``."""

    def __init__(
        self,
        engine: Engine | Sequence[Engine],
        *,
        guard: Guard | None = None,
        schema: Any = None,
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
    ) -> None:
        copies = list(engine) if isinstance(engine, Sequence) else [engine]
        if not copies:
            raise InputError("an assistant needs at least one engine")
        self.engines = copies
        self.guard = guard
        self.schema = _compiled(schema)
        self.tools = _tool_specs(tools)
        self._free: queue.SimpleQueue[Engine] = queue.SimpleQueue()
        for e in copies:
            self._free.put(e)
        self._screened: OrderedDict[tuple[str, str], Decision] = OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def open(
        cls,
        policy: str | Path | None = None,
        *,
        model: str | Path | None = None,
        cascade: bool | None = None,
        safety: bool | str | Path | Guard = False,
        schema: Any = None,
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        copies: int = 1,
        n_ctx: int | None = None,
        traces: bool = True,
        progress: ProgressFn | None = None,
        shadow: str | Path | None = None,
    ) -> Assistant:
        """A cascade from ``policy`` (a shipped name such as 'cross-check', or a TOML file; default: the
        shipped default), or one local ``model`` (a models.lock name or path) with no cascade.
        ``cascade`` (default: when no model is named): False for the lock's default model alone.
        ``safety``: True for the shipped safety policy, a policy file, or a Guard. ``copies``: engines
        loaded to answer that many requests at once. ``shadow``: another policy recorded in each
        request's trace with what it would have done (``edgekit trace stats --compare``)."""
        cascade = model is None if cascade is None else cascade
        if shadow is not None and not cascade:
            raise InputError("a shadow policy needs the cascade", "Drop the model, or pass policy=POLICY.")
        if (policy is not None or cascade) and model is not None:
            raise InputError("a cascade and a model exclude each other", "The policy names its models.")
        if copies < 1:
            raise InputError(f"copies must be 1 or more, got {copies}")
        guard = _guard(safety)
        engines: list[Engine] = []
        try:
            for _ in range(copies):
                if not cascade:
                    from edgekit.api import load

                    engines.append(load(model, n_ctx=n_ctx, progress=progress or no_progress))
                else:
                    from edgekit.assistant.loading import load_router

                    shared = engines[0].ledger if engines and isinstance(engines[0], Router) else None
                    engines.append(load_router(policy, traces=traces, ledger=shared, shadow=shadow))
        except BaseException:
            for e in engines:
                e.close()
            raise
        return cls(engines, guard=guard, schema=schema, tools=tools)

    # --- facts ------------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return str(self.engines[0].name)

    @property
    def router(self) -> Router | None:
        first = self.engines[0]
        return first if isinstance(first, Router) else None

    @property
    def n_ctx(self) -> int:
        return int(getattr(self.engines[0], "n_ctx", 0) or 0)

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Tokens of ``messages`` as the first engine counts them (an estimate for one that cannot)."""
        first = self.engines[0]
        return first.prompt_tokens(messages) if isinstance(first, CountsTokens) else estimate_tokens(messages)

    def notices(self) -> list[str]:
        """What a user should know before the first request (a cascade with no remote configured)."""
        router = self.router
        tier = router.policy.remote_tier if router is not None else None
        if router is None or tier is None or router.remote is not None:
            return []
        return [
            f"no remote tier is configured: requests the policy escalates get the local answer, marked "
            f"degraded; set {tier.base_url_env} (and {tier.api_key_env}) to the remote's /v1 URL"
        ]

    # --- answering --------------------------------------------------------------------------------

    def chat(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        stream: bool = False,
        schema: Any = None,
        tools: Sequence[Tool | Mapping[str, Any]] | None = None,
        tool_choice: ToolChoice = "auto",
        parallel_tool_calls: bool = False,
        system: str | None = None,
        placeholders: Placeholders | None = None,
        **params: Any,
    ) -> Answer | AnswerStream:
        """Answer ``messages`` (a prompt or OpenAI-style messages, tool calls and results included).

        ``schema`` (or the assistant's default): the answer is JSON matching it, parsed into
        ``Answer.value``. ``tools``: the model calls one (``Answer.tool_calls``) or, with
        ``tool_choice='auto'``, answers directly; ``parallel_tool_calls``: it may make several calls in
        one answer (more for a small model to get right, so off by default). ``placeholders``: keep
        them across calls (a session does) so a value keeps its token. ``params``: max_tokens,
        temperature, top_p, seed, stop. With ``stream=True`` an ``AnswerStream``: iterate its chunks,
        then read ``.answer``."""
        ph = placeholders if placeholders is not None else Placeholders()
        specs = _tool_specs(tools) if tools is not None else self.tools
        msgs = render_messages(messages, system)
        compiled = None if specs else (_compiled(schema) if schema is not None else self.schema)
        if specs:
            from edgekit.schema.tools import describe, tools_schema

            chosen = _chosen(specs, tool_choice)
            shape = {"allow_text": tool_choice == "auto", "parallel": parallel_tool_calls}
            compiled = tools_schema(chosen, **shape)
            msgs = [{"role": "system", "content": describe(chosen, **shape)}, *msgs]
        screened = self.screen(msgs, ph)
        if compiled is not None:
            params["schema"] = compiled
        output: Literal["text", "json", "tool"] = "tool" if specs else ("json" if compiled else "text")
        engine = self._free.get()
        if stream and not isinstance(engine, Router) and not specs:
            return AnswerStream(self, engine, screened, ph, params)
        try:
            result = self._route(engine, screened, output, params)
        finally:
            self._release(engine)
        answer = self._finish(result, screened, ph, output)
        return AnswerStream.of(answer) if stream else answer

    def complete(
        self,
        prompt: str,
        *,
        stream: bool = False,
        placeholders: Placeholders | None = None,
        **params: Any,
    ) -> Answer | AnswerStream:
        """Continue ``prompt`` as plain text, with no chat template. The guard screens it as a user
        message (a blocked prompt raises ``SafetyBlockedError``; redacted values become placeholders the
        model continues around) and the continuation at the output layer. ``params``: max_tokens,
        temperature, top_p, seed, stop. A cascade continues on its first local tier."""
        if not isinstance(prompt, str):
            raise InputError(f"the prompt must be a string, not {type(prompt).__name__}")
        ph = placeholders if placeholders is not None else Placeholders()
        screened = self.screen(normalize_messages(prompt), ph)
        text = screened.messages[0]["content"]
        engine = self._free.get()
        try:
            model, route = _text_model(engine)
        except BaseException:
            self._release(engine)
            raise
        if stream:
            source = partial(model.complete, text, stream=True, **params)
            return AnswerStream(self, engine, screened, ph, params, source=source, answerer=(model, route))
        try:
            if self.guard is not None and self.guard.policy.decoding.banned:  # stop where one appears
                chunks = self.guard.guard_chunks(model.complete(text, stream=True, **params))
                completion = collect(chunks, model=model.name, backend=model.name)
            else:
                completion = model.complete(text, stream=False, **params)
        finally:
            self._release(engine)
        return self._finish(RouteResult(completion, route, ()), screened, ph, "text")

    def run_tools(
        self,
        messages: str | Sequence[Mapping[str, Any]],
        tools: Mapping[str, Callable[..., Any]],
        *,
        max_steps: int = 4,
        timeout_s: float = 60.0,
        tool_timeout_s: float = 30.0,
        **kwargs: Any,
    ) -> ToolRun:
        """Call -> guard the arguments -> run the function -> guard its result (context layer) ->
        answer, until the model answers without a tool, ``max_steps`` tool rounds are spent or
        ``timeout_s`` has passed. ``tools``: name -> function; its parameters come from its signature."""
        from edgekit.assistant.tools import run_tools

        return run_tools(
            self,
            messages,
            tools,
            max_steps=max_steps,
            timeout_s=timeout_s,
            tool_timeout_s=tool_timeout_s,
            **kwargs,
        )

    def _release(self, engine: Engine) -> None:
        self._free.put(engine)

    def screen(self, messages: Sequence[ChatMessage], placeholders: Placeholders) -> Screened:
        """Input intake and context assembly (see the module doc); no guard: the messages as they are."""
        if self.guard is None:
            return Screened(list(messages), {}, (), ())
        out: list[ChatMessage] = []
        signal: dict[str, Action] = {}
        findings: list[Finding] = []
        for m in messages:
            layer = {"user": "input", "tool": "context"}.get(m["role"])
            if layer is None:
                out.append({**m, "content": placeholders.mask_known(m["content"])})
                continue
            d = self._check(m["content"], layer)
            findings += _findings(d, layer)
            if d.blocked and layer == "context":  # a poisoned document is left out, not obeyed
                out.append({**m, "content": WITHHELD})
                continue
            if d.blocked:
                raise SafetyBlockedError(f"the request was refused by the safety policy ({_brief(d)})")
            for category, action in d.signal().items():
                signal[category] = strictest([signal.get(category, "allow"), action])  # type: ignore[list-item]
            found = {s: v.category for v in d.verdicts if v.action == "redact" for s in v.spans}
            out.append({**m, "content": placeholders.mask(m["content"], found, found)})
        sent = tuple(dict.fromkeys(t for m in out for t in placeholders.tokens_in(m["content"])))
        return Screened(out, dict(signal), tuple(findings), sent)

    def _check(self, text: str, layer: str) -> Decision:
        """The guard's decision, remembered: a conversation re-sends its history every turn, and each
        message is judged (and audited) once."""
        assert self.guard is not None
        key = (layer, text)
        with self._lock:
            found = self._screened.get(key)
        if found is not None:
            return found
        d = self.guard.check(text, layer)  # type: ignore[arg-type]
        with self._lock:
            self._screened[key] = d
            while len(self._screened) > 512:
                self._screened.popitem(last=False)
        return d

    def _route(self, engine: Engine, screened: Screened, output: str, params: dict[str, Any]) -> RouteResult:
        if isinstance(engine, Router):
            return engine.route(screened.messages, safety=screened.signal, output_type=output, **params)  # type: ignore[arg-type]
        if self.guard is not None and self.guard.policy.decoding.banned and "schema" not in params:
            # generate as a guarded stream, so a banned sequence stops decoding where it appears
            chunks = engine.chat(screened.messages, stream=True, **params)
            assert not isinstance(chunks, Completion)
            completion = collect(self.guard.guard_chunks(chunks), model=engine.name, backend=engine.name)
        else:
            done = engine.chat(screened.messages, stream=False, **params)
            assert isinstance(done, Completion)
            completion = done
        return RouteResult(completion, _model_route(engine), ())

    def _finish(self, result: RouteResult, screened: Screened, ph: Placeholders, form: str) -> Answer:
        """The output layer on whichever tier answered, the user's values put back, JSON parsed."""
        completion = result.completion
        answer = Answer(
            text="",
            completion=completion,
            route=result.route,
            trace_id=result.trace_id,
            finish_reason=completion.finish_reason,
            escalation_reason=result.escalation_reason,
            degraded_reason=result.degraded_reason,
            gates=result.gates,
            rejections=result.rejections,
            findings=screened.findings,
        )
        if form == "tool":
            return self._tool_answer(answer, ph, screened.sent)
        filtered, answer = self._output(answer, completion.text)
        text, privacy = ph.restore(filtered, screened.sent)
        answer = replace(answer, text=text, privacy=privacy)
        if form == "json" and not answer.blocked:
            answer = replace(answer, value=_restore_value(_json(filtered), ph))
        return answer

    def _output(self, answer: Answer, text: str) -> tuple[str, Answer]:
        """(text after the output layer, the answer with its findings; withheld when blocked)."""
        if self.guard is None or answer.blocked:
            return text, answer
        d = self.guard.check_output(text)
        found = _findings(d, "output")
        answer = replace(answer, findings=(*answer.findings, *found))
        if d.blocked:
            return "", replace(answer, finish_reason="content_filter")
        return d.text, answer

    def _tool_answer(self, answer: Answer, ph: Placeholders, sent: tuple[str, ...]) -> Answer:
        """A tool-call answer: the call parsed and its arguments checked at the tool_call layer as the
        model wrote them; then the user's own values are put back (the tool runs on device), unless the
        policy blocks their category at that layer (a pasted key never reaches a tool). Or the direct
        answer of tool_choice 'auto'."""
        value = _json(answer.completion.text)
        if not isinstance(value, dict) or not ({"content", "name", "calls"} & set(value)):
            raise InputError("the tool-call answer is not a tool call")  # the schema rules this out
        if "content" in value:
            filtered, answer = self._output(answer, str(value["content"]))
            text, privacy = ph.restore(filtered, sent)
            return replace(answer, text=text, privacy=privacy)
        written = value.get("calls", [value])
        checked = [self._tool_call(str(c["name"]), c.get("arguments") or {}, ph, answer) for c in written]
        calls = tuple(call for call, _ in checked)
        return replace(
            answer,
            finish_reason="content_filter" if all(c.blocked for c in calls) else "tool_calls",
            tool_calls=calls,
            findings=(*answer.findings, *(f for _, found in checked for f in found)),
        )

    def _tool_call(
        self, name: str, written: Any, ph: Placeholders, answer: Answer
    ) -> tuple[ToolCall, list[Finding]]:
        from edgekit.schema import ToolCall

        if self.guard is None:
            return ToolCall(name, _restore_value(written, ph), completion=answer.completion), []
        d = self.guard.check_tool_arguments(name, written)
        found = _findings(d, "tool_call")
        for token in dict.fromkeys(ph.tokens_in(json.dumps(written, ensure_ascii=False))):
            category = ph.category(token) or "pii"
            if self.guard.policy.action_for(category, "tool_call", "redact") == "block":
                reason = f"{name}: {token} stands for {category} the policy keeps from tools"
                found.append(Finding("tool_call", category, "block", reason))
        blocked = d.blocked or any(f.action == "block" for f in found)
        args = _restore_value(d.arguments if d.arguments is not None else written, ph)
        return ToolCall(name, args, blocked, tuple(f.reason for f in found), answer.completion), found

    def close(self) -> None:
        for e in {id(e): e for e in self.engines}.values():  # a thread-safe engine may be listed N times
            e.close()

    def __enter__(self) -> Assistant:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AnswerStream(Iterator[Chunk]):
    """The chunks of an answer as they may be shown; ``answer`` is set once the stream has ended.

    Closing it early stops generation and gives the engine back; the answer then holds what was shown.
    """

    def __init__(
        self,
        assistant: Assistant | None,
        engine: Any,
        screened: Screened | None,
        ph: Placeholders | None,
        params: dict[str, Any],
        *,
        done: Answer | None = None,
        source: Callable[[], Iterator[Chunk]] | None = None,
        answerer: tuple[Any, str] | None = None,
    ) -> None:
        """``source``: where the chunks come from (default: the engine's chat stream); ``answerer``: the
        model that makes them and its route, for the answer (default: the engine's)."""
        self.answer: Answer | None = done
        self._assistant, self._engine = assistant, engine
        self._source = source
        if answerer is None and engine is not None:
            answerer = (engine, _model_route(engine))
        self._answerer = answerer
        self._started = False
        self._chunks = iter(self._whole(done) if done is not None else self._generate(screened, ph, params))

    @classmethod
    def of(cls, answer: Answer) -> AnswerStream:
        """A finished answer as a stream: its text, then a final chunk."""
        return cls(None, None, None, None, {}, done=answer)

    def __next__(self) -> Chunk:
        self._started = True
        return next(self._chunks)

    def close(self) -> None:
        """Stop generation and give the engine back (also when the stream was never started)."""
        if not self._started and self._assistant is not None:
            self._started = True
            self._assistant._release(self._engine)
        close = getattr(self._chunks, "close", None)
        if close is not None:
            close()

    @staticmethod
    def _whole(answer: Answer) -> Iterator[Chunk]:
        c = answer.completion
        if answer.text:
            yield Chunk(answer.text, c.signals)
        yield Chunk("", finish_reason=answer.finish_reason, usage=c.usage)

    def _generate(
        self, screened: Screened | None, ph: Placeholders | None, params: dict[str, Any]
    ) -> Iterator[Chunk]:
        assistant, engine = self._assistant, self._engine
        assert assistant is not None and screened is not None and ph is not None
        restorer = StreamRestorer(ph)
        raw: list[Chunk] = []
        checked: list[Decision] = []  # what the guard found in the text it let through
        try:
            if self._source is not None:
                chunks = self._source()
            else:
                chunks = engine.chat(screened.messages, stream=True, **params)
            try:
                guard = assistant.guard
                shown = guard.guard_chunks(chunks, decisions=checked) if guard is not None else chunks
                for chunk in shown:
                    raw.append(chunk)
                    text = restorer.feed(chunk.text)
                    if chunk.finish_reason or chunk.usage:
                        text += restorer.flush()
                    if text or chunk.finish_reason or chunk.usage:
                        yield replace(chunk, text=text)
                tail = restorer.flush()
                if tail:
                    yield Chunk(tail)
            finally:
                close = getattr(chunks, "close", None)
                if close is not None:
                    close()
                assert self._answerer is not None
                answerer, route = self._answerer
                completion = collect(raw, model=answerer.name, backend=answerer.name)
                json_form = "schema" in params
                self.answer = _streamed(route, completion, screened, ph, checked, json_form)
        finally:
            assistant._release(engine)


# --- helpers ----------------------------------------------------------------------------------------


def _streamed(
    route: str,
    completion: Completion,
    screened: Screened,
    ph: Placeholders,
    checked: Sequence[Decision],
    json_form: bool,
) -> Answer:
    """The answer of a one-model stream, with the findings the stream's own checks made (the held-back
    text is checked again as it grows: each category and action is reported once, as last seen)."""
    found = {(f.category, f.action): f for d in checked for f in _findings(d, "output")}
    text, privacy = ph.restore(completion.text, screened.sent)
    return Answer(
        text=text,
        completion=completion,
        route=route,
        trace_id=new_trace_id(),
        finish_reason=completion.finish_reason,
        findings=(*screened.findings, *found.values()),
        value=_restore_value(_json(completion.text), ph) if json_form else None,
        privacy=privacy,
    )


def render_messages(
    messages: str | Sequence[Mapping[str, Any]], system: str | None = None
) -> list[ChatMessage]:
    """OpenAI-style messages as every engine can read them: an assistant message with ``tool_calls``
    carries the calls as the JSON a model writes for them (``{"name": ..., "arguments": {...}}``), and
    keeps ``tool_calls`` for remote tiers; a tool message keeps its ``tool_call_id``."""
    if isinstance(messages, str):
        return normalize_messages(messages, system)
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise InputError(f"message {i} is not a mapping", "Each message needs a role and a content.")
        msg = {k: v for k, v in m.items() if k in ("role", "content", "tool_calls", "tool_call_id", "name")}
        calls = m.get("tool_calls")
        if calls and m.get("role") == "assistant":  # as the model writes them (one call, or several)
            written = [_call_value(i, c) for c in calls]
            msg["content"] = json.dumps(
                written[0] if len(written) == 1 else {"calls": written}, ensure_ascii=False
            )
        elif msg.get("content") is None:
            msg["content"] = ""
        out.append(msg)
    return normalize_messages(out, system)  # type: ignore[arg-type]


def _call_value(i: int, call: Any) -> dict[str, Any]:
    fn = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise InputError(f"message {i}: a tool call needs function.name", "Send tool_calls as OpenAI does.")
    args = fn.get("arguments") or "{}"
    try:
        parsed = json.loads(args) if isinstance(args, str) else args
    except ValueError:
        raise InputError(f"message {i}: tool call {fn['name']}: arguments are not JSON") from None
    return {"name": fn["name"], "arguments": parsed}


def _text_model(engine: Engine) -> tuple[Any, str]:
    """The model that continues plain text for ``engine`` (a cascade's first local tier), and its route."""
    if isinstance(engine, Router):
        return engine.local[0], f"local:{engine.policy.local_tiers[0].name}"
    if not callable(getattr(engine, "complete", None)):
        raise InputError(
            f"{engine.name} cannot continue plain text, only chat", "Use chat, or serve a local model."
        )
    return engine, _model_route(engine)


def _model_route(engine: Any) -> str:
    backend = getattr(engine, "backend", None)
    where = "remote" if getattr(backend, "name", "") == "remote" else "local"
    return f"{where}:{engine.name}"


def _findings(d: Decision, layer: str) -> list[Finding]:
    return [Finding(layer, v.category, v.action, v.reason) for v in d.verdicts if v.action != "allow"]


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _restore_value(value: Any, ph: Placeholders) -> Any:
    if isinstance(value, str):
        return ph.restore(value)[0]
    if isinstance(value, dict):
        return {k: _restore_value(v, ph) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore_value(v, ph) for v in value]
    return value


def _brief(d: Decision) -> str:
    return ", ".join(f"{c}: {a}" for c, a in sorted(d.signal().items()) if a == "block")


def _compiled(schema: Any) -> CompiledSchema | None:
    if schema is None:
        return None
    from edgekit.schema import compile_schema

    return compile_schema(schema)


def _tool_specs(tools: Sequence[Tool | Mapping[str, Any]] | None) -> tuple[Tool, ...]:
    from edgekit.schema import Tool

    return tuple(t if isinstance(t, Tool) else Tool.from_openai(t) for t in tools or ())


def _chosen(specs: Sequence[Tool], choice: str) -> tuple[Tool, ...]:
    if choice in ("auto", "required"):
        return tuple(specs)
    chosen = tuple(t for t in specs if t.name == choice)
    if not chosen:
        names = ", ".join(t.name for t in specs)
        raise InputError(f"tool_choice names {choice!r}, not one of the tools", f"Use one of: {names}.")
    return chosen


def _guard(safety: bool | str | Path | Guard) -> Guard | None:
    if isinstance(safety, Guard):
        return safety
    if safety is False or safety is None:
        return None
    from edgekit.safety.policy import load_policy

    return Guard(load_policy(None if safety is True else safety)).warm()
