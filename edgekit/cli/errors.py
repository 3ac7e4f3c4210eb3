"""The one place library errors become what the CLI says: exit codes and CLI wording.

The library's errors carry a message and a hint in the words of the Python API (``allow_requantize=True``,
``calibration=DATA``). The CLI maps the error's type to its exit code and rewrites the API's words into
the flags a shell user types, from one table, so neither side speaks the other's language:

- exit codes: 0 ok, 1 a check ran and failed, 2 usage or input error, 3 runtime failure, 130 interrupted;
- ``FLAGS``: each API phrase a hint may use, with its flag. Phrases are exact keyword forms, so a message
  that merely mentions a word (``max_tokens`` in an answer) is never touched.
"""

from __future__ import annotations

from edgekit.errors import CheckFailedError, EdgekitError, InputError

EXIT_CODES: tuple[tuple[type[EdgekitError], int], ...] = ((CheckFailedError, 1), (InputError, 2))
"""First match wins; any other EdgekitError (and anything unexpected) exits 3."""

DEFAULT_HINTS: dict[type[EdgekitError], str] = {InputError: "Check the command's --help."}
"""What the CLI says instead of a class's library-level default hint."""

FLAGS: dict[str, str] = {
    "allow_requantize=True": "--allow-requantize",
    "calibration=DATA": "--calibration DATA",
    "imatrix=FILE": "--imatrix FILE",
    "format='gguf'": "--format gguf",
    "format='onnx'": "--format onnx",
    "out=PATH": "--out PATH",
    "out_dir=DIR": "--out-dir DIR",
    "name=NAME": "--name NAME",
    "replace=True": "--replace",
    "max_tokens=N": "--max-tokens N",
    "policy=POLICY": "--policy POLICY",
    "generator=NAME": "--generator NAME",
    "answer_tokens=N": "--answer-tokens N",
    "resume=True": "--resume",
    "checkpoint_dir=DIR": "--checkpoint-dir DIR",
    "seq_len=N": "--seq-len N",
    "drop_layers=": "--drop-layers ",
    "quality=Q": "--quality Q",
    "max_remote_share=S": "--max-remote-share S",
}


def exit_code(error: BaseException) -> int:
    for kind, code in EXIT_CODES:
        if isinstance(error, kind):
            return code
    return 3


def cli_words(text: str) -> str:
    """``text`` with every API phrase of ``FLAGS`` replaced by its flag."""
    for phrase, flag in FLAGS.items():
        text = text.replace(phrase, flag)
    return text


def cli_hint(error: EdgekitError) -> str:
    for kind, hint in DEFAULT_HINTS.items():
        if isinstance(error, kind) and error.hint == kind.default_hint:
            return hint
    return cli_words(error.hint)


def error_line(error: EdgekitError) -> str:
    """The one line the CLI prints for a library error."""
    return f"error: {cli_words(error.message)} (hint: {cli_hint(error)})"
