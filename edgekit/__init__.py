"""edgekit: on-device LLM inference toolkit.

The public API (a test keeps ``__all__`` sorted and complete)::

    import edgekit
    with edgekit.load() as model:
        print(model.chat("Say hi in French.", temperature=0).text)

    with edgekit.Assistant.open(safety=True) as assistant:   # the cascade, guarded
        answer = assistant.chat("What is the usual adult dosage of paracetamol?")
        print(answer.text, answer.route, answer.escalation_reason)
"""

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
from edgekit.version import __version__

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
