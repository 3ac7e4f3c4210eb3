"""edgekit: on-device LLM inference toolkit.

The public API (a test keeps ``__all__`` sorted and complete)::

    import edgekit
    with edgekit.load() as model:
        print(model.chat("Say hi in French.", temperature=0).text)

    with edgekit.Assistant.open(safety=True) as assistant:   # the cascade, guarded
        answer = assistant.chat("What is the usual adult dosage of paracetamol?")
        print(answer.text, answer.route, answer.escalation_reason)

Names resolve on first use (``__getattr__``), so ``import edgekit`` and the CLI's start stay fast and an
interrupt while starting up is a clean exit rather than a traceback.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgekit.lazy import exports
from edgekit.version import __version__

if TYPE_CHECKING:
    from edgekit.api import Model, list_models, load, lockfile, model_info, pull, remote, remove_model, verify
    from edgekit.assistant import Answer, AnswerStream, Assistant, Placeholders
    from edgekit.assistant.session import ChatSession
    from edgekit.assistant.tools import ToolRun, ToolStep
    from edgekit.compress.pipeline import run_recipe
    from edgekit.compress.quantize import QuantizeResult, quantize
    from edgekit.compress.recipe import load_recipe
    from edgekit.errors import EdgekitError
    from edgekit.evaluate import EvalReport, Suite, load_suite, run_eval
    from edgekit.models.lock import Lockfile, ModelEntry
    from edgekit.runtime.base import Backend, Capabilities
    from edgekit.runtime.types import (
        ChatMessage,
        Chunk,
        Completion,
        Confidence,
        GenerationParams,
        TokenSignal,
        Usage,
    )
    from edgekit.safety import Guard, SafetyPolicy
    from edgekit.safety import load_policy as load_safety_policy
    from edgekit.schema import CompiledSchema, JsonResult, Tool, ToolCall, compile_schema

_PUBLIC: dict[str, tuple[str, str]] = {
    "Answer": ("edgekit.assistant", "Answer"),
    "AnswerStream": ("edgekit.assistant", "AnswerStream"),
    "Assistant": ("edgekit.assistant", "Assistant"),
    "Backend": ("edgekit.runtime.base", "Backend"),
    "Capabilities": ("edgekit.runtime.base", "Capabilities"),
    "ChatMessage": ("edgekit.runtime.types", "ChatMessage"),
    "ChatSession": ("edgekit.assistant.session", "ChatSession"),
    "Chunk": ("edgekit.runtime.types", "Chunk"),
    "CompiledSchema": ("edgekit.schema", "CompiledSchema"),
    "Completion": ("edgekit.runtime.types", "Completion"),
    "Confidence": ("edgekit.runtime.types", "Confidence"),
    "EdgekitError": ("edgekit.errors", "EdgekitError"),
    "EvalReport": ("edgekit.evaluate", "EvalReport"),
    "GenerationParams": ("edgekit.runtime.types", "GenerationParams"),
    "Guard": ("edgekit.safety", "Guard"),
    "JsonResult": ("edgekit.schema", "JsonResult"),
    "Lockfile": ("edgekit.models.lock", "Lockfile"),
    "Model": ("edgekit.api", "Model"),
    "ModelEntry": ("edgekit.models.lock", "ModelEntry"),
    "Placeholders": ("edgekit.assistant", "Placeholders"),
    "QuantizeResult": ("edgekit.compress.quantize", "QuantizeResult"),
    "SafetyPolicy": ("edgekit.safety", "SafetyPolicy"),
    "Suite": ("edgekit.evaluate", "Suite"),
    "TokenSignal": ("edgekit.runtime.types", "TokenSignal"),
    "Tool": ("edgekit.schema", "Tool"),
    "ToolCall": ("edgekit.schema", "ToolCall"),
    "ToolRun": ("edgekit.assistant.tools", "ToolRun"),
    "ToolStep": ("edgekit.assistant.tools", "ToolStep"),
    "Usage": ("edgekit.runtime.types", "Usage"),
    "compile_schema": ("edgekit.schema", "compile_schema"),
    "list_models": ("edgekit.api", "list_models"),
    "load": ("edgekit.api", "load"),
    "load_recipe": ("edgekit.compress.recipe", "load_recipe"),
    "load_safety_policy": ("edgekit.safety", "load_policy"),
    "load_suite": ("edgekit.evaluate", "load_suite"),
    "lockfile": ("edgekit.api", "lockfile"),
    "model_info": ("edgekit.api", "model_info"),
    "pull": ("edgekit.api", "pull"),
    "quantize": ("edgekit.compress.quantize", "quantize"),
    "remote": ("edgekit.api", "remote"),
    "remove_model": ("edgekit.api", "remove_model"),
    "run_eval": ("edgekit.evaluate", "run_eval"),
    "run_recipe": ("edgekit.compress.pipeline", "run_recipe"),
    "verify": ("edgekit.api", "verify"),
}
"""Public name -> (module, name in that module)."""


__getattr__, __dir__ = exports(__name__, _PUBLIC, submodules=True)

__all__ = [
    "Answer",
    "AnswerStream",
    "Assistant",
    "Backend",
    "Capabilities",
    "ChatMessage",
    "ChatSession",
    "Chunk",
    "CompiledSchema",
    "Completion",
    "Confidence",
    "EdgekitError",
    "EvalReport",
    "GenerationParams",
    "Guard",
    "JsonResult",
    "Lockfile",
    "Model",
    "ModelEntry",
    "Placeholders",
    "QuantizeResult",
    "SafetyPolicy",
    "Suite",
    "TokenSignal",
    "Tool",
    "ToolCall",
    "ToolRun",
    "ToolStep",
    "Usage",
    "__version__",
    "compile_schema",
    "list_models",
    "load",
    "load_recipe",
    "load_safety_policy",
    "load_suite",
    "lockfile",
    "model_info",
    "pull",
    "quantize",
    "remote",
    "remove_model",
    "run_eval",
    "run_recipe",
    "verify",
]
