"""Structured output: JSON schema -> constrained decoding (local), validate and repair (any backend),
tool calls. See 'Structured output' in the README."""

from edgekit.schema.compile import CompiledSchema, compile_schema, load_schema_file
from edgekit.schema.generate import JsonResult, generate_json, stream_json
from edgekit.schema.keywords import KeywordUse
from edgekit.schema.tools import Tool, ToolCall, call_tool, run_tool, tools_schema

__all__ = [
    "CompiledSchema",
    "JsonResult",
    "KeywordUse",
    "Tool",
    "ToolCall",
    "call_tool",
    "compile_schema",
    "generate_json",
    "load_schema_file",
    "run_tool",
    "stream_json",
    "tools_schema",
]
