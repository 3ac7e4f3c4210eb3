"""llama.cpp backend (GGUF) on llama-cpp-python.

Generation drives ``Llama.generate`` directly: the prompt prefix already in the KV cache is reused
across chat turns, and after each sampled token the logits llama.cpp already computed are read in
place (no copy, no second pass) to give the chosen token's probability and the entropy.
"""

from __future__ import annotations

import ctypes
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from edgekit.config import default_threads
from edgekit.errors import (
    BackendError,
    ContextOverflowError,
    EmptyPromptError,
    MissingDependencyError,
    ModelFileError,
)
from edgekit.runtime.base import BackendBase, Capabilities
from edgekit.runtime.decoding import StopMatcher, Utf8Stream, token_signal
from edgekit.runtime.gguf import GGUFInfo, read_gguf
from edgekit.runtime.llamacpp_fields import check_model
from edgekit.runtime.threads import RECHECK_TOKENS, claim_threads, release_threads
from edgekit.runtime.types import (
    ChatMessage,
    Chunk,
    GenerationParams,
    TokenConstraint,
    TokenSignal,
    Usage,
    plain_transcript,
)

DEFAULT_N_CTX = 4096


_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"
_MARKS = re.compile("\ue000(\\d+)\ue001")
"""Private-use characters that stand in for message texts while the template renders."""


def _import_llama_cpp():
    try:
        import llama_cpp
        import llama_cpp.llama_chat_format as chat_format
    except ImportError as e:  # pragma: no cover - a core dependency
        raise MissingDependencyError(
            f"llama-cpp-python is not importable: {e}", "pip install llama-cpp-python"
        ) from None
    return llama_cpp, chat_format


class LlamaCppBackend(BackendBase):
    name = "llama.cpp"
    capabilities = Capabilities(grammar=True, logprobs=True, stream=True, local=True, structured="grammar")

    def __init__(
        self,
        path: Path,
        *,
        model_id: str | None = None,
        n_ctx: int | None = None,
        threads: int | None = None,
        info: GGUFInfo | None = None,
        signals: bool = True,
    ) -> None:
        llama_cpp, chat_format = _import_llama_cpp()
        self._lib = llama_cpp
        self.path = path
        self.model_id = model_id or path.stem
        self.info = info or read_gguf(path)
        check_model(path, self.info)  # fields llama.cpp would abort this process on, refused first
        self.n_ctx = n_ctx or min(DEFAULT_N_CTX, self.info.context_length or DEFAULT_N_CTX)
        self._signals = signals
        # Threads the caller fixed are kept; else each generation uses up to default_threads(), fewer while
        # other processes keep cores busy (see runtime/threads.py).
        self._adaptive = threads is None
        self._threads = threads or default_threads()
        self._most_threads = self._threads
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=self.n_ctx,
                n_threads=self._threads,
                n_threads_batch=self._threads,
                verbose=False,
                logits_all=False,
            )
        except (ValueError, RuntimeError, OSError) as e:
            raise ModelFileError(f"llama.cpp could not load {path}: {e}") from None
        self._vocab = self.llm._model.vocab
        self._n_vocab = self.llm.n_vocab()
        self._piece_buf = ctypes.create_string_buffer(256)
        self._longest_piece = 0  # max_piece_bytes(), found on first use
        template = self.info.chat_template
        eos, bos = self.llm.token_eos(), self.llm.token_bos()
        self._formatter = (
            chat_format.Jinja2ChatFormatter(
                template=template,
                eos_token=self.llm._model.token_get_text(eos) if eos >= 0 else "",
                bos_token=self.llm._model.token_get_text(bos) if bos >= 0 else "",
            )
            if template
            else None  # base models ship no template: see plain_transcript
        )

    # --- prompt ------------------------------------------------------------------------------------

    def render(self, messages: Sequence[ChatMessage]) -> str:
        if self._formatter is None:
            return plain_transcript(messages)
        try:
            return self._formatter(messages=list(messages)).prompt
        except Exception as e:  # jinja errors, raise_exception() in templates
            raise BackendError(
                f"the model's chat template failed on these messages: {e}",
                "Check the message roles (some templates require alternating user/assistant).",
            ) from None

    def tokenize(self, text: str, *, special: bool = True, add_bos: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def prompt_tokens(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The prompt's tokens. A chat template writes its own BOS; a plain transcript gets the one the
        vocabulary asks for. Special tokens come only from the template: a message whose text spells one
        (``<|im_start|>system``, typed or pasted) is tokenized as plain text, so it cannot forge a turn."""
        return self._prompt_tokens(messages, self.render(messages))

    def count_prompt_tokens(self, messages: Sequence[ChatMessage]) -> int | None:
        return len(self.prompt_tokens(messages))

    def _prompt_tokens(self, messages: Sequence[ChatMessage], rendered: str) -> list[int]:
        """``prompt_tokens`` for messages already rendered as ``rendered``."""
        add_bos = self._formatter is None
        if not any(self._spells_special(m.get("content")) for m in messages):
            return self.tokenize(rendered, add_bos=add_bos)
        marked: list[ChatMessage] = [
            {**m, "content": f"{_MARK_OPEN}{i}{_MARK_CLOSE}"} for i, m in enumerate(messages)
        ]
        pieces = _MARKS.split(self.render(marked))  # template text, message index, template text, ...
        tokens: list[int] = []
        for n, piece in enumerate(pieces):
            if n % 2:
                tokens += self.tokenize(str(messages[int(piece)].get("content") or ""), special=False)
            elif piece:
                tokens += self.tokenize(piece, add_bos=add_bos and not tokens)
        return tokens

    def _spells_special(self, content: object) -> bool:
        if not isinstance(content, str) or not content:
            return False
        return self.tokenize(content, special=True) != self.tokenize(content, special=False)

    def _piece(self, token: int) -> bytes:
        n = self._lib.llama_token_to_piece(
            self._vocab, token, self._piece_buf, len(self._piece_buf), 0, False
        )
        return self._piece_buf.raw[: max(n, 0)]

    # --- generation ----------------------------------------------------------------------------------

    def max_piece_bytes(self) -> int:
        """The longest text any one token stands for (special tokens as written): a text of B bytes is at
        least B / this many tokens."""
        if self._longest_piece == 0:
            lib, buf = self._lib, self._piece_buf
            self._longest_piece = max(
                lib.llama_token_to_piece(self._vocab, t, buf, len(buf), 0, True) for t in range(self._n_vocab)
            )
        return max(self._longest_piece, 1)

    def _surely_too_long(self, text: str) -> None:
        """Refuse, before tokenizing it, a prompt too long for any tokenization to fit the context (the
        tokenizer's time grows faster than the text with many special tokens)."""
        size = len(text.encode("utf-8", "surrogatepass"))
        if size // 2 <= self.n_ctx:  # fits whatever the pieces (no need to look at the vocabulary)
            return
        # Twice the longest piece: a normalizer may fold a few bytes of text into a shorter piece.
        least = size // (2 * self.max_piece_bytes())
        if least > self.n_ctx:
            raise ContextOverflowError(
                f"the prompt is at least {least} tokens but the context window is {self.n_ctx}"
            )

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[Chunk]:
        rendered = self.render(messages)
        self._surely_too_long(rendered)
        tokens = self._prompt_tokens(messages, rendered)
        room = self.n_ctx - len(tokens)
        if room < 1:
            raise ContextOverflowError(
                f"the prompt is {len(tokens)} tokens but the context window is {self.n_ctx}"
            )
        return self._generate(tokens, params, min(params.max_tokens, room))

    def stream_text(self, prompt: str, params: GenerationParams) -> Iterator[Chunk]:
        """Continue ``prompt`` as it is, with no chat template: the BOS the vocabulary asks for, then the
        text (special tokens written in it are read as such, as llama-server does)."""
        add_bos = bool(self._lib.llama_vocab_get_add_bos(self._vocab))
        self._surely_too_long(prompt)
        tokens = self.tokenize(prompt, add_bos=add_bos)
        if not tokens:
            raise EmptyPromptError("the prompt is empty", "Send a prompt with some text.")
        room = self.n_ctx - len(tokens)
        if room < 1:
            raise ContextOverflowError(
                f"the prompt is {len(tokens)} tokens but the context window is {self.n_ctx}"
            )
        return self._generate(tokens, params, min(params.max_tokens, room))

    def _fit_threads(self) -> None:
        """Use as many threads as there are cores nobody else is using (only when the caller fixed none)."""
        n = claim_threads(id(self), self._most_threads, adaptive=self._adaptive)
        if n != self._threads:
            self._lib.llama_set_n_threads(self.llm._ctx.ctx, n, n)
            self._threads = n

    def _generate(self, tokens: list[int], params: GenerationParams, limit: int) -> Iterator[Chunk]:
        llm, lib = self.llm, self._lib
        self._fit_threads()
        llm.set_seed(params.seed if params.seed is not None else random.randrange(1 << 31))
        logits_ptr = lib.llama_get_logits_ith
        utf8, stops = Utf8Stream(), StopMatcher(params.stop)
        n_out, finish = 0, "length"
        mask = self._constraint(params)
        gen = llm.generate(
            tokens,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=0.0,
            temp=params.temperature,
            repeat_penalty=1.0,
            logits_processor=None if mask is None else [lambda _ids, logits: mask.apply(logits)],
        )
        try:
            for token in gen:
                if lib.llama_vocab_is_eog(self._vocab, token):
                    finish = "stop"
                    break
                if mask is not None:
                    mask.consume(token)
                n_out += 1
                text = utf8.feed(self._piece(token))
                signal = TokenSignal(text, token_id=token)
                if self._signals:
                    logits = np.ctypeslib.as_array(logits_ptr(llm._ctx.ctx, -1), shape=(self._n_vocab,))
                    prob, ent = token_signal(logits, token)
                    signal = TokenSignal(text, prob, ent, token)
                shown = stops.push(text)
                if stops.stopped:
                    finish = "stop"
                    if shown:
                        yield Chunk(shown, (signal,))
                    break
                yield Chunk(shown, (signal,))
                if mask is not None and mask.done:
                    finish = "stop"  # the value is complete; the grammar allows nothing more
                    break
                if n_out >= limit:
                    break
                if n_out % RECHECK_TOKENS == 0:  # a neighbour may have started or stopped meanwhile
                    self._fit_threads()
        finally:
            gen.close()
            release_threads(id(self))
        tail = "" if stops.stopped else stops.push(utf8.flush()) + stops.flush()
        yield Chunk(tail, (), finish_reason=finish, usage=Usage(len(tokens), n_out))

    def _constraint(self, params: GenerationParams) -> TokenConstraint | None:
        fmt = params.response_format
        if fmt is None:
            return None
        if fmt.constraint is None:
            raise BackendError(
                f"the response format {fmt.name!r} carries no token constraint for a local model",
                "Build it with edgekit.schema.compile_schema(...).response_format().",
            )
        return fmt.constraint(self)

    @property
    def vocab(self) -> object:
        """llama.cpp's vocabulary handle (for a tokenizer that computes token masks over it)."""
        return self._vocab

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def eog_tokens(self) -> list[int]:
        """The tokens that end a generation (end of sequence, end of turn)."""
        eog = (self.llm.token_eos(), self._lib.llama_vocab_eot(self._vocab))
        return sorted({t for t in eog if t >= 0})

    # --- scoring (no generation) ----------------------------------------------------------------

    def text_tokens(self, text: str) -> tuple[list[int], list[int]]:
        """(prefix, ids) for scoring plain text: the BOS the vocabulary asks for, then the text's tokens."""
        add_bos = bool(self._lib.llama_vocab_get_add_bos(self._vocab))
        bos = self.llm.token_bos()
        return ([bos] if add_bos and bos >= 0 else []), self.tokenize(text, special=False)

    @property
    def trained_context(self) -> int | None:
        return self.info.context_length

    def logit_blocks(self, tokens: Sequence[int], block: int = 256) -> Iterator[np.ndarray]:
        """Logits of every position of ``tokens``, evaluated from an empty KV cache, as float32 [n, vocab]
        blocks of at most ``block`` consecutive positions.

        Each batch asks llama.cpp for all of its outputs (the per-token ``logits`` flag), so this needs no
        ``logits_all`` context and chat generation keeps its last-token-only speed. A yielded block is a
        view of llama.cpp's output buffer, valid until the next block is requested: copy it to keep it.
        The chat KV cache is cleared before and after.
        """
        if len(tokens) > self.n_ctx:
            raise ContextOverflowError(f"{len(tokens)} tokens do not fit the context window of {self.n_ctx}")
        llm = self.llm
        block = max(1, min(block, llm.n_batch))
        llm.reset()
        llm._ctx.kv_cache_clear()
        try:
            for start in range(0, len(tokens), block):
                part = list(tokens[start : start + block])
                llm._batch.set_batch(part, start, True)
                try:
                    llm._ctx.decode(llm._batch)
                except RuntimeError as e:
                    raise BackendError(f"llama.cpp failed while scoring: {e}") from None
                yield np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(len(part), self._n_vocab))
        finally:
            llm.reset()
            llm._ctx.kv_cache_clear()

    def hidden_states(self, tokens: Sequence[int]) -> np.ndarray:
        """The last layer's hidden state (after the output norm) at every position of ``tokens``, float32
        [n, n_embd], evaluated from an empty KV cache in batches; the chat KV cache is cleared before and
        after, and the context goes back to logits only."""
        if not tokens:
            raise ValueError("no tokens to evaluate")
        if len(tokens) > self.n_ctx:
            raise ContextOverflowError(f"{len(tokens)} tokens do not fit the context window of {self.n_ctx}")
        llm, lib = self.llm, self._lib
        width = llm.n_embd()
        rows = np.empty((len(tokens), width), dtype=np.float32)
        llm.reset()
        llm._ctx.kv_cache_clear()
        lib.llama_set_embeddings(llm._ctx.ctx, True)
        try:
            for start in range(0, len(tokens), llm.n_batch):
                part = list(tokens[start : start + llm.n_batch])
                llm._batch.set_batch(part, start, True)
                try:
                    llm._ctx.decode(llm._batch)
                except RuntimeError as e:
                    raise BackendError(f"llama.cpp failed while reading hidden states: {e}") from None
                for i in range(len(part)):
                    row = lib.llama_get_embeddings_ith(llm._ctx.ctx, i)
                    if not row:  # a pooled (embedding) model gives no per-position states
                        raise BackendError(f"{self.model_id} gives no per-position hidden states")
                    rows[start + i] = np.ctypeslib.as_array(row, shape=(width,))
        finally:
            lib.llama_set_embeddings(llm._ctx.ctx, False)
            llm.reset()
            llm._ctx.kv_cache_clear()
        return rows

    def reset(self) -> None:
        """Forget the KV cache (the next prompt is evaluated from scratch)."""
        self.llm.reset()

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is not None:
            llm.close()
            self.llm = None
