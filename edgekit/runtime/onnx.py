"""The onnxruntime backend: a causal LM exported by optimum (``model.onnx`` + tokenizer files), on CPU.

The folder layout is the one ``optimum-cli export onnx --task text-generation-with-past`` writes::

    model.onnx [model.onnx_data]  config.json  tokenizer.json  tokenizer_config.json
    [generation_config.json]  [special_tokens_map.json]

The graph takes ``input_ids``, ``attention_mask``, optionally ``position_ids`` and one
``past_key_values.{i}.key/value`` pair per layer, and returns ``logits`` plus ``present.{i}.key/value``.
Decoding (sampling, signals, detokenization, stop strings) happens here in numpy, one token per step
with the KV cache fed back.

A graph whose ``genai_config.json`` says ``past_present_share_buffer`` (onnxruntime-genai's builder writes
it: its ``GroupQueryAttention`` appends to the cache in place) decodes into one preallocated buffer per
cache tensor, bound as both the past input and the present output, sized for the prompt plus the token
budget: no step copies the cache. Other graphs get the cache back as new arrays each step.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.config import default_threads
from edgekit.errors import (
    BackendError,
    ContextOverflowError,
    EmptyPromptError,
    InputError,
    MissingDependencyError,
    ModelFileError,
    TokenizerError,
)
from edgekit.runtime.base import BackendBase, Capabilities
from edgekit.runtime.decoding import StopMatcher, token_signal
from edgekit.runtime.threads import RECHECK_TOKENS, claim_threads, release_threads
from edgekit.runtime.types import ChatMessage, Chunk, GenerationParams, TokenSignal, Usage, plain_transcript

# Graph files tried in order: optimum's current single-file export, then the older merged decoder.
MODEL_FILES = ("model.onnx", "decoder_model_merged.onnx")
DEFAULT_N_CTX = 2048
# Prompt tokens decoded together with the first generated ones, so that detokenizers which treat the
# start of a sequence specially (SentencePiece's leading space) see the same context as in the full text.
_DETOK_CONTEXT = 5

_DTYPES: dict[str, type[np.generic]] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}
_KNOWN_INPUTS = ("input_ids", "attention_mask", "position_ids", "cache_position", "use_cache_branch")


def _read_json(path: Path, *, required: bool = False) -> dict[str, Any]:
    if not path.is_file():
        if required:
            raise ModelFileError(f"{path.name} is missing from {path.parent}")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFileError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelFileError(f"{path} does not hold a JSON object")
    return data


def _token_text(value: object) -> str | None:
    """A special token as tokenizer_config.json spells it: a string or an AddedToken dict."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _int_ids(value: object) -> set[int]:
    if isinstance(value, bool):
        return set()
    if isinstance(value, int):
        return {value}
    if isinstance(value, list):
        return {v for v in value if isinstance(v, int) and not isinstance(v, bool)}
    return set()


def sample_token(logits: np.ndarray, params: GenerationParams, rng: np.random.Generator) -> int:
    """Pick the next token: argmax when temperature is 0, else temperature, then top-k, then top-p."""
    if params.temperature == 0:
        return int(np.argmax(logits))
    z = np.asarray(logits, dtype=np.float64) / params.temperature
    k = params.top_k
    idx = np.argpartition(z, -k)[-k:] if 0 < k < z.size else np.arange(z.size)
    zz = z[idx]
    order = np.argsort(-zz, kind="stable")
    idx, zz = idx[order], zz[order]
    p = np.exp(zz - zz[0])
    p /= p.sum()
    if params.top_p < 1.0:
        # smallest prefix (by descending probability) whose mass reaches top_p
        n = min(int(np.searchsorted(np.cumsum(p), params.top_p)) + 1, p.size)
        idx, p = idx[:n], p[:n] / p[:n].sum()
    return int(idx[rng.choice(p.size, p=p)])


class IncrementalDetokenizer:
    """Turns token ids into text deltas one id at a time: ``tokenizers``' own ``DecodeStream``, primed
    with the prompt's last ids so a leading-space rule sees the same context as in the full text. A
    character split across byte-level tokens comes out whole once its last byte arrives; one the token
    limit cut in half is dropped at the end rather than shown as U+FFFD (as on the llama.cpp path)."""

    def __init__(self, tokenizer: Any, context_ids: Sequence[int] = ()) -> None:
        from tokenizers.decoders import DecodeStream

        self._tok = tokenizer
        self._stream = DecodeStream(ids=list(context_ids), skip_special_tokens=True)

    def push(self, token_id: int) -> str:
        return self._stream.step(self._tok, token_id) or ""

    def flush(self) -> str:
        """Nothing is held back but an incomplete character, which is dropped."""
        return ""


@dataclass
class _State:
    """One generation's KV cache (or, for cache-less graphs, the ids seen so far). ``capacity`` > 0: the
    cache tensors are buffers of that many positions that the graph writes in place."""

    past: dict[str, np.ndarray] = field(default_factory=dict)
    length: int = 0
    ids: list[int] = field(default_factory=list)
    capacity: int = 0


def _shares_kv_buffer(folder: Path) -> bool:
    """True when the folder's genai_config.json declares a graph that appends to its cache in place."""
    search = _read_json(folder / "genai_config.json").get("search")
    return isinstance(search, dict) and search.get("past_present_share_buffer") is True


class OnnxBackend(BackendBase):
    """Runs an optimum-exported ONNX causal LM with onnxruntime on CPU."""

    name = "onnxruntime"
    capabilities = Capabilities(grammar=False, logprobs=True, stream=True, local=True, structured="validate")

    def __init__(
        self,
        path: Path,
        *,
        model_id: str | None = None,
        n_ctx: int | None = None,
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime  # noqa: F401 (checked here, used by _open_session)
        except ImportError as exc:  # pragma: no cover - core dependency
            raise MissingDependencyError(
                "onnxruntime is not installed", "Install it with 'pip install onnxruntime'."
            ) from exc
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError(
                "the 'tokenizers' package is not installed", "Install it with 'pip install tokenizers'."
            ) from exc

        path = Path(path).expanduser()
        if path.is_file() and path.suffix == ".onnx":
            model_file, folder = path, path.parent
        else:
            folder = path
            if not folder.is_dir():
                raise ModelFileError(
                    f"ONNX model folder {folder} does not exist",
                    "Point at a folder holding model.onnx, config.json and tokenizer.json "
                    "(as written by 'optimum-cli export onnx').",
                )
            found = [folder / f for f in MODEL_FILES if (folder / f).is_file()]
            if not found:
                raise ModelFileError(
                    f"no model.onnx in {folder}",
                    "Export the model with 'optimum-cli export onnx --task text-generation-with-past', "
                    "or point at the folder that holds model.onnx.",
                )
            model_file = found[0]
        tok_file = folder / "tokenizer.json"
        if not tok_file.is_file():
            raise ModelFileError(
                f"tokenizer.json is missing from {folder}",
                "Copy the model's tokenizer.json (fast tokenizer) next to model.onnx.",
            )

        self.path = folder
        self.model_id = model_id or folder.name
        self.config = _read_json(folder / "config.json")
        self._tok_config = _read_json(folder / "tokenizer_config.json")
        gen_config = _read_json(folder / "generation_config.json")
        special_map = _read_json(folder / "special_tokens_map.json")

        try:
            self._tokenizer = Tokenizer.from_file(str(tok_file))
        except Exception as exc:
            raise TokenizerError(f"cannot load {tok_file}: {exc}") from exc

        self._bos_token = _token_text(self._tok_config.get("bos_token")) or _token_text(
            special_map.get("bos_token")
        )
        self._eos_token = _token_text(self._tok_config.get("eos_token")) or _token_text(
            special_map.get("eos_token")
        )
        self._template = self._load_template(folder)
        self.eos_ids = self._find_eos_ids(gen_config)

        # --- the session -------------------------------------------------------------------------
        # onnxruntime fixes a session's threads when it is made, and its workers spin between steps, so
        # a generation with as many threads as cores collapses beside a busy neighbour. Unless the caller
        # fixed the count, each generation asks runtime/threads.py how many cores are free and runs on a
        # session with that many threads: the full one, or one made the first time fewer are free.
        self._adaptive = not threads
        self._most_threads = int(threads) if threads else default_threads()
        self._model_file = model_file
        self._session: Any = self._open_session(self._most_threads)
        self._sessions = {self._most_threads: self._session}
        self._current = self._session
        self._setup_io(model_file)

        cfg_ctx = next(
            (
                v
                for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length")
                if isinstance(v := self.config.get(key), int) and v > 0
            ),
            DEFAULT_N_CTX,
        )
        self.n_ctx = int(n_ctx) if n_ctx else cfg_ctx
        if self.n_ctx < 1:
            raise InputError(f"n_ctx must be at least 1, got {n_ctx}")

    # --- loading helpers -----------------------------------------------------------------------

    def _open_session(self, threads: int) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(
                str(self._model_file), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            detail = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise ModelFileError(
                f"onnxruntime cannot load {self._model_file}: {detail}",
                "The file is truncated, corrupt or not an ONNX model (check that model.onnx_data, if any, "
                "sits next to it); re-download or re-export the model.",
            ) from exc

    def _fit_threads(self) -> None:
        """Generate on the session whose thread count matches the cores free now (only when the caller
        fixed none); a session for a new count is made when first needed and kept."""
        n = claim_threads(id(self), self._most_threads, adaptive=self._adaptive)
        if n not in self._sessions:
            try:
                self._sessions[n] = self._open_session(n)
            except ModelFileError:  # it loaded once: keep generating on the one there is
                self._sessions[n] = self._session
        self._current = self._sessions[n]

    def _load_template(self, folder: Path) -> Any:
        source: object = None
        jinja_file = folder / "chat_template.jinja"
        if jinja_file.is_file():
            source = jinja_file.read_text(encoding="utf-8")
        else:
            source = self._tok_config.get("chat_template")
            if isinstance(source, list):  # named templates: [{"name": "default", "template": "..."}]
                named = {t.get("name"): t.get("template") for t in source if isinstance(t, dict)}
                source = named.get("default") or next(iter(named.values()), None)
        if not isinstance(source, str) or not source.strip():
            return None
        try:
            from jinja2 import TemplateError
            from jinja2.ext import loopcontrols
            from jinja2.sandbox import ImmutableSandboxedEnvironment
        except ImportError as exc:
            raise MissingDependencyError(
                "the 'jinja2' package is not installed", "Install it with 'pip install jinja2'."
            ) from exc

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        def tojson(x: object, ensure_ascii: bool = False, indent: int | None = None, **kw: object) -> str:
            return json.dumps(
                x, ensure_ascii=ensure_ascii, indent=indent, sort_keys=bool(kw.get("sort_keys"))
            )

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
        env.filters["tojson"] = tojson
        env.globals["raise_exception"] = raise_exception
        env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
        try:
            return env.from_string(source)
        except TemplateError as exc:
            raise TokenizerError(f"the chat template in tokenizer_config.json does not parse: {exc}") from exc

    def _find_eos_ids(self, gen_config: dict[str, Any]) -> frozenset[int]:
        ids = _int_ids(gen_config.get("eos_token_id")) | _int_ids(self.config.get("eos_token_id"))
        if self._eos_token is not None:
            tid = self._tokenizer.token_to_id(self._eos_token)
            if tid is not None:
                ids.add(int(tid))
        return frozenset(ids)

    def _setup_io(self, model_file: Path) -> None:
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = [o.name for o in self._session.get_outputs()]
        if "input_ids" not in inputs or "logits" not in outputs:
            raise ModelFileError(
                f"{model_file.name} is not a causal LM graph (needs input 'input_ids' and output 'logits'; "
                f"has inputs {sorted(inputs)} and outputs {outputs})",
                "Export with 'optimum-cli export onnx --task text-generation-with-past'.",
            )
        self._past_names = sorted(
            (n for n in inputs if n.startswith("past_key_values.")),
            key=lambda n: (int(n.split(".")[1]) if n.split(".")[1].isdigit() else 0, n),
        )
        unknown = [n for n in inputs if n not in _KNOWN_INPUTS and n not in self._past_names]
        if unknown:
            raise ModelFileError(
                f"{model_file.name} needs inputs this backend does not know how to feed: {unknown}",
                "Use a decoder-only text-generation export (optimum layout).",
            )
        present = ["present." + n[len("past_key_values.") :] for n in self._past_names]
        missing = [p for p in present if p not in outputs]
        if missing:
            raise ModelFileError(f"{model_file.name} has past inputs but lacks outputs {missing}")
        self._output_names = ["logits", *present]
        logits_meta = next(o for o in self._session.get_outputs() if o.name == "logits")
        vocab = logits_meta.shape[-1] if logits_meta.shape else None
        vocab = vocab if isinstance(vocab, int) else self.config.get("vocab_size")
        self._vocab: int = vocab if isinstance(vocab, int) else 0  # 0: unknown, no in-place cache
        self._shared_kv = (
            bool(self._past_names)
            and logits_meta.type == "tensor(float)"
            and self._vocab > 0
            and _shares_kv_buffer(model_file.parent)
        )
        self._has_mask = "attention_mask" in inputs
        self._has_pos = "position_ids" in inputs
        self._has_cache_pos = "cache_position" in inputs
        self._has_branch = "use_cache_branch" in inputs
        self._ids_dtype = _DTYPES.get(inputs["input_ids"].type, np.int64)
        self._mask_dtype = (
            _DTYPES.get(inputs["attention_mask"].type, np.int64) if self._has_mask else np.int64
        )
        self._pos_dtype = _DTYPES.get(inputs["position_ids"].type, np.int64) if self._has_pos else np.int64

        cfg = self.config
        n_heads = cfg.get("num_attention_heads") or cfg.get("n_head")
        n_kv = cfg.get("num_key_value_heads") or n_heads
        hidden = cfg.get("hidden_size") or cfg.get("n_embd")
        head_dim = cfg.get("head_dim") or (hidden // n_heads if hidden and n_heads else None)
        self._empty_past: dict[str, np.ndarray] = {}
        for name in self._past_names:
            meta = inputs[name]
            dtype = _DTYPES.get(meta.type)
            if dtype is None or not np.issubdtype(dtype, np.floating):
                raise ModelFileError(f"unsupported KV cache type {meta.type} for {name}")
            shape = list(meta.shape)
            if len(shape) != 4:
                raise ModelFileError(
                    f"{name} has rank {len(shape)}; expected [batch, kv_heads, seq, head_dim]",
                    "This export's KV cache layout (e.g. fused key_value) is not supported.",
                )
            heads = shape[1] if isinstance(shape[1], int) else n_kv
            dim = shape[3] if isinstance(shape[3], int) else head_dim
            if not isinstance(heads, int) or not isinstance(dim, int):
                raise ModelFileError(
                    f"cannot tell the KV cache shape of {name} "
                    "(dynamic dims and no head counts in config.json)",
                    "Keep config.json next to model.onnx.",
                )
            self._empty_past[name] = np.zeros((1, heads, 0, dim), dtype=dtype)

    # --- prompt ----------------------------------------------------------------------------------

    def render_chat(self, messages: Sequence[ChatMessage]) -> str:
        """The prompt text the model sees: the chat template applied, ending with the assistant turn."""
        if self._template is None:
            return plain_transcript(messages)
        msgs = [dict(m) for m in messages]
        from jinja2 import TemplateError

        try:
            return str(
                self._template.render(
                    messages=msgs,
                    add_generation_prompt=True,
                    bos_token=self._bos_token or "",
                    eos_token=self._eos_token or "",
                )
            )
        except TemplateError as exc:
            raise InputError(
                f"the model's chat template rejected the messages: {exc}",
                "Check the message roles and order this model accepts "
                "(some need strict user/assistant turns).",
            ) from exc
        except Exception as exc:
            raise TokenizerError(f"the chat template failed to render: {exc!r}") from exc

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of the rendered prompt (special tokens come from the template, none are added)."""
        text = self.render_chat(messages)
        try:
            return list(self._tokenizer.encode(text, add_special_tokens=False).ids)
        except Exception as exc:
            raise TokenizerError(f"cannot tokenize the prompt: {exc}") from exc

    # --- model -----------------------------------------------------------------------------------

    def _new_state(self, capacity: int = 0) -> _State:
        """An empty cache; with ``capacity`` (positions) and a graph that shares its cache buffers, one
        preallocated buffer per cache tensor."""
        if capacity > 0 and self._shared_kv:
            past = {
                name: np.zeros((*e.shape[:2], capacity, e.shape[3]), dtype=e.dtype)
                for name, e in self._empty_past.items()
            }
            return _State(past=past, capacity=capacity)
        return _State(past=dict(self._empty_past))

    def _forward(self, state: _State, ids: Sequence[int]) -> np.ndarray:
        """Run ``ids`` on top of ``state``; return the last position's logits as float32 [vocab]."""
        return self._run(state, ids)[-1]

    def new_state(self) -> _State:
        """An empty KV cache (for callers that drive the graph themselves, like calibration)."""
        return self._new_state()

    def graph_feeds(self, state: _State, ids: Sequence[int]) -> dict[str, np.ndarray]:
        """The graph inputs that run ``ids`` on top of ``state`` (ids, mask, positions, past key values)."""
        return {**self._step_feeds(state, ids), **state.past}

    def _step_feeds(self, state: _State, ids: Sequence[int]) -> dict[str, np.ndarray]:
        """The graph inputs for ``ids`` on top of ``state`` other than the cache."""
        if self._past_names:
            new, past_len = list(ids), state.length
        else:  # cache-less graph: recompute the whole sequence every step
            new, past_len = [*state.ids, *ids], 0
        total = past_len + len(new)
        feeds: dict[str, np.ndarray] = {"input_ids": np.asarray([new], dtype=self._ids_dtype)}
        if self._has_mask:
            feeds["attention_mask"] = np.ones((1, total), dtype=self._mask_dtype)
        if self._has_pos:
            feeds["position_ids"] = np.arange(past_len, total, dtype=self._pos_dtype)[None, :]
        if self._has_cache_pos:
            feeds["cache_position"] = np.arange(past_len, total, dtype=np.int64)
        if self._has_branch:
            feeds["use_cache_branch"] = np.array([state.length > 0], dtype=np.bool_)
        return feeds

    def advance(self, state: _State, ids: Sequence[int]) -> np.ndarray:
        """Run ``ids`` on top of ``state`` (which then holds their KV cache); their float32 logits."""
        return self._run(state, ids)

    def _run(self, state: _State, ids: Sequence[int]) -> np.ndarray:
        """Run ``ids`` on top of ``state``; return the logits of each of them as float32 [len(ids), vocab]."""
        session = self._current
        if session is None:
            raise BackendError("the ONNX backend is closed", "Create a new backend to generate again.")
        if state.capacity:
            return self._run_in_place(session, state, ids)
        feeds = self.graph_feeds(state, ids)
        if not self._past_names:
            state.ids.extend(ids)
        try:
            outs = session.run(self._output_names, feeds)
        except Exception as exc:
            raise BackendError(f"onnxruntime failed while generating: {exc}") from exc
        logits = outs[0]
        state.past = dict(zip(self._past_names, outs[1:], strict=True))
        state.length = int(feeds["input_ids"].shape[1]) + (state.length if self._past_names else 0)
        rows = logits[0] if logits.ndim == 3 else logits
        return np.asarray(rows[-len(ids) :], dtype=np.float32)

    def _run_in_place(self, session: Any, state: _State, ids: Sequence[int]) -> np.ndarray:
        """``_run`` for a shared-buffer graph: each cache buffer is bound as the past input and as the
        present output, so the graph appends the new positions where they belong and nothing is copied;
        the logits land in a buffer of ours too."""
        if state.length + len(ids) > state.capacity:
            raise ContextOverflowError(
                f"{state.length + len(ids)} positions do not fit the {state.capacity} this cache holds"
            )
        binding = session.io_binding()
        for name, value in self._step_feeds(state, ids).items():
            binding.bind_cpu_input(name, value)
        for name in self._past_names:
            buf = state.past[name]
            present = "present." + name[len("past_key_values.") :]
            binding.bind_input(name, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
            binding.bind_output(present, "cpu", 0, buf.dtype, list(buf.shape), buf.ctypes.data)
        logits = np.empty((1, len(ids), self._vocab), dtype=np.float32)
        binding.bind_output("logits", "cpu", 0, logits.dtype, list(logits.shape), logits.ctypes.data)
        try:
            session.run_with_iobinding(binding)
        except Exception as exc:
            raise BackendError(f"onnxruntime failed while generating: {exc}") from exc
        state.length += len(ids)
        return logits[0]

    # --- scoring (no generation) -----------------------------------------------------------------

    def text_tokens(self, text: str) -> tuple[list[int], list[int]]:
        """(prefix, ids) for scoring plain text: the special tokens the tokenizer puts before a text
        (its BOS, if any), then the text's own tokens."""
        try:
            ids = list(self._tokenizer.encode(text, add_special_tokens=False).ids)
            full = list(self._tokenizer.encode(text, add_special_tokens=True).ids)
        except Exception as exc:
            raise TokenizerError(f"cannot tokenize the text: {exc}") from exc
        at = next((i for i in range(len(full) - len(ids) + 1) if full[i : i + len(ids)] == ids), 0)
        return full[:at], ids

    @property
    def trained_context(self) -> int | None:
        v = self.config.get("max_position_embeddings") or self.config.get("n_positions")
        return int(v) if isinstance(v, int) and v > 0 else None

    def logit_blocks(self, tokens: Sequence[int], block: int = 256) -> Iterator[np.ndarray]:
        """Logits of every position of ``tokens`` from an empty past, as float32 [n, vocab] blocks of at
        most ``block`` consecutive positions (the KV cache carries over between blocks)."""
        if len(tokens) > self.n_ctx:
            raise ContextOverflowError(f"{len(tokens)} tokens do not fit the context window of {self.n_ctx}")
        state = self._new_state(capacity=len(tokens))
        try:
            for start in range(0, len(tokens), max(1, block)):
                yield self._run(state, tokens[start : start + max(1, block)])
        finally:
            state.past.clear()

    # --- generation ------------------------------------------------------------------------------

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[Chunk]:
        if self._session is None:
            raise BackendError("the ONNX backend is closed", "Create a new backend to generate again.")
        prompt_ids = self.encode_chat(messages)
        if not prompt_ids:
            raise EmptyPromptError("the prompt is empty after applying the chat template")
        return self._start(prompt_ids, params)

    def stream_text(self, prompt: str, params: GenerationParams) -> Iterator[Chunk]:
        """Continue ``prompt`` as it is, with no chat template: the special tokens the tokenizer puts
        before a text (its BOS, if any), then the text's tokens."""
        if self._session is None:
            raise BackendError("the ONNX backend is closed", "Create a new backend to generate again.")
        prefix, ids = self.text_tokens(prompt)
        if not ids:
            raise EmptyPromptError("the prompt is empty", "Send a prompt with some text.")
        return self._start([*prefix, *ids], params)

    def _start(self, prompt_ids: list[int], params: GenerationParams) -> Iterator[Chunk]:
        """Check that ``prompt_ids`` leave room to generate (before anything runs), then generate."""
        if len(prompt_ids) >= self.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {len(prompt_ids)} tokens but the context window is {self.n_ctx} tokens "
                "(it must leave room for at least one generated token)"
            )
        budget = min(params.max_tokens, self.n_ctx - len(prompt_ids))
        return self._generate(prompt_ids, params, budget)

    def _generate(self, prompt_ids: list[int], params: GenerationParams, budget: int) -> Iterator[Chunk]:
        state = self._new_state(capacity=len(prompt_ids) + budget)
        rng = np.random.default_rng(params.seed)
        detok = IncrementalDetokenizer(self._tokenizer, prompt_ids[-_DETOK_CONTEXT:])
        stops = StopMatcher(params.stop)
        finish, completion = "length", 0
        feed = prompt_ids
        self._fit_threads()
        try:
            while completion < budget:
                if completion and completion % RECHECK_TOKENS == 0:  # a neighbour may have come or gone
                    self._fit_threads()
                logits = self._forward(state, feed)
                token = sample_token(logits, params, rng)
                if token in self.eos_ids:
                    finish = "stop"
                    break
                completion += 1
                prob, entropy = token_signal(logits, token)
                piece = detok.push(token)
                text = stops.push(piece)
                yield Chunk(text, signals=(TokenSignal(piece, prob, entropy, token),))
                if stops.stopped:
                    finish = "stop"
                    break
                feed = [token]
            if not stops.stopped:
                tail = stops.push(detok.flush())
                if stops.stopped:
                    finish = "stop"
                else:
                    tail += stops.flush()
                if tail:
                    yield Chunk(tail)
            yield Chunk("", finish_reason=finish, usage=Usage(len(prompt_ids), completion))
        finally:
            state.past.clear()
            self._current = self._session
            release_threads(id(self))

    def close(self) -> None:
        self._session = self._current = None
        self._sessions.clear()
