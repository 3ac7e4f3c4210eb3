"""The error tree. Every error says what went wrong and what to do next, in the words of the Python API.

Three families: input errors (``InputError``: the caller can fix what they passed or pointed at), runtime
failures (every other ``EdgekitError``) and checks that ran and failed (``CheckFailedError``). The CLI maps
them to exit codes and rewords hints into its flags (``edgekit.cli.errors``). Remote errors also say
whether retrying can help.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base of all edgekit errors: a one-line message plus a hint with the next step."""

    default_hint = "Run again with EDGEKIT_DEBUG=1 for details."

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})"


# --- input and usage -------------------------------------------------------------------


class InputError(EdgekitError):
    """Something the user gave is unusable as it is."""

    default_hint = "Check the value named above against the documentation."


class EmptyPromptError(InputError):
    default_hint = "Give a non-empty prompt, or '-' to read it from stdin."


class EncodingError(InputError):
    default_hint = "Convert the input to UTF-8 (for example with iconv -t UTF-8)."


class ContextOverflowError(InputError):
    default_hint = "Shorten the prompt or history (/reset in chat), or load the model with a larger n_ctx."


class UnknownModelError(InputError):
    default_hint = "Run 'edgekit models list' to see the models in models.lock."


class LockfileError(InputError):
    default_hint = "Fix the field named above; see the models.lock section of the README."


class ModelFileError(InputError):
    """The file is not a model we can load (truncated, wrong format, broken tokenizer)."""

    default_hint = "Re-download the file, or point at a complete GGUF or ONNX model folder."


class TokenizerError(ModelFileError):
    default_hint = "The model's tokenizer is broken; rebuild the file from its source, or use another model."


class TokenizerMismatchError(InputError):
    """Two models compared token by token (eval) do not tokenize the same text the same way."""

    default_hint = "Compare builds of the same model (for example a quantization against its source)."


class SuiteError(InputError):
    """An eval suite or task file is malformed: the message names the file, line and key."""

    default_hint = "Fix the key named above; see 'Quality-drift gate' in the README for the suite format."


class RecipeError(InputError):
    """A compression recipe is malformed: the message names the file, line and key."""

    default_hint = "Fix the key named above; see 'Recipes' in the README for the recipe format."


class SchemaError(InputError):
    """A JSON schema is malformed, too large, or uses a keyword strict mode cannot enforce."""

    default_hint = "Fix the schema (see 'Structured output' in the README); JSON pointers name the place."

    def __init__(
        self, message: str, hint: str | None = None, *, pointer: str = "", keyword: str = ""
    ) -> None:
        super().__init__(message, hint)
        self.pointer = pointer
        self.keyword = keyword


# --- model store (runtime failures unless the user can fix it) ------------------------------------------


class HashMismatchError(EdgekitError):
    default_hint = "The file was corrupted or replaced; run 'edgekit pull NAME --force' to fetch it again."


class OfflineError(EdgekitError):
    default_hint = "Unset EDGEKIT_OFFLINE to allow downloads, or copy the file into the cache."


class DownloadError(EdgekitError):
    default_hint = (
        "Check the network or the source in models.lock, then run 'edgekit pull' again; it resumes."
    )


class DiskFullError(DownloadError):
    default_hint = "Free disk space or set EDGEKIT_CACHE_DIR to a larger disk, then pull again."


# --- runtime ------------------------------------------------------------------------------


class BackendError(EdgekitError):
    default_hint = "Run again with EDGEKIT_DEBUG=1 for details."


class MissingDependencyError(EdgekitError):
    default_hint = "Install the extra named in the message."


class RemoteError(EdgekitError):
    """A remote OpenAI-compatible endpoint failed. ``retryable`` says whether trying again may help."""

    retryable = False
    default_hint = "Check the endpoint URL and that the server is running."

    def __init__(self, message: str, hint: str | None = None, *, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class RemoteUnreachableError(RemoteError):
    retryable = True
    default_hint = "Check the endpoint URL (EDGEKIT_REMOTE_URL) and that the server is running."


class RemoteTimeoutError(RemoteError):
    retryable = True
    default_hint = "The endpoint is slow or stuck; raise the timeout or try again later."


class RemoteAuthError(RemoteError):
    retryable = False
    default_hint = "Set a valid key in the API-key environment variable (EDGEKIT_REMOTE_API_KEY by default)."


class RemoteRateLimitError(RemoteError):
    retryable = True
    default_hint = "The endpoint is rate limiting; wait and retry, or lower the request rate."


class RemoteServerError(RemoteError):
    retryable = True
    default_hint = "The endpoint failed on its side; retry later or check its logs."


class RemoteProtocolError(RemoteError):
    retryable = True
    default_hint = "The endpoint's reply is not OpenAI-compatible; check the URL points at /v1."


class RemoteRequestError(RemoteError):
    """4xx other than auth and rate limits: our request was rejected as it stands."""

    retryable = False
    default_hint = "The endpoint rejected the request; check the model name and parameters."


# --- serving (edgekit serve turns a request away; HTTP 429 or 503 with Retry-After) -------------------


class ServerBusyError(EdgekitError):
    """The server cannot take this request now. ``retry_after`` (seconds) says when trying again may help."""

    retryable = True
    status = 503
    default_hint = "Retry after the delay in the Retry-After header."

    def __init__(self, message: str, hint: str | None = None, *, retry_after: int = 1) -> None:
        super().__init__(message, hint)
        self.retry_after = retry_after


class QueueFullError(ServerBusyError):
    status = 429
    default_hint = "Retry after the delay in Retry-After, or start the server with a larger --max-queue."


class QueueTimeoutError(ServerBusyError):
    default_hint = "Retry later, or start the server with a larger --queue-timeout or --concurrency."


class ShuttingDownError(ServerBusyError):
    default_hint = "The server is stopping; retry against a running instance."


# --- checks -------------------------------------------------------------------------------


class SchemaOutputError(EdgekitError):
    """The model's output did not satisfy the schema within the allowed attempts and tokens."""

    default_hint = "Raise max_tokens=N, simplify the schema, or use a larger model."

    def __init__(self, message: str, hint: str | None = None, *, text: str = "", attempts: int = 0) -> None:
        super().__init__(message, hint)
        self.text = text
        self.attempts = attempts


class CheckFailedError(EdgekitError):
    """A check ran and its verdict is 'fail' (for example a drift gate or a verification)."""

    default_hint = "See the report above for what failed."
