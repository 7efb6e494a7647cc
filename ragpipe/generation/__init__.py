"""Generators: chat messages -> streamed answer text, behind one declared contract.

Modules: ``base`` (the Generator protocol and the Capabilities a backend declares),
``llamacpp`` (a GGUF file in-process), ``openai`` (any OpenAI-compatible server:
llama-server, Ollama, LM Studio, vLLM, hosted APIs), ``think`` (removing <think> reasoning)
and ``copying`` (copy-constrained decoding). The Pipeline picks the backend from
``llm.backend`` (pipeline/pipeline.py).
"""

from .base import Capabilities, Generator, Message
from .copying import CopyConstraint, plain
from .llamacpp import LlamaCppGenerator
from .openai import OpenAIGenerator
from .think import ThinkFilter, strip_think

__all__ = [
    "Capabilities",
    "CopyConstraint",
    "Generator",
    "LlamaCppGenerator",
    "Message",
    "OpenAIGenerator",
    "ThinkFilter",
    "plain",
    "strip_think",
]
