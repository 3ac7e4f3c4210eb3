"""The assistant an app ships: cascade, safety, schema and tools as one object (see assistant.py)."""

from edgekit.assistant.answer import Answer, Finding
from edgekit.assistant.assistant import AnswerStream, Assistant
from edgekit.assistant.privacy import Placeholders, Restoration

__all__ = ["Answer", "AnswerStream", "Assistant", "Finding", "Placeholders", "Restoration"]
