"""The shared runtime: models, backends, structured output, embeddings, device facts.

Apps import what they use from here (``from smallhold.runtime import Runtime, Message``);
the modules below are the runtime's own layout and may move.
"""

from smallhold.runtime.device import DeviceProbe, DeviceState, StaticProbe, simulated
from smallhold.runtime.runtime import Runtime
from smallhold.runtime.structured import generate_structured
from smallhold.runtime.types import (
    CancelToken,
    ChatRequest,
    Completion,
    Delta,
    Finish,
    GenerationParams,
    Message,
    StreamEvent,
    Usage,
)

__all__ = ["CancelToken", "ChatRequest", "Completion", "Delta", "DeviceProbe", "DeviceState",
           "Finish", "GenerationParams", "Message", "Runtime", "StaticProbe", "StreamEvent",
           "Usage", "generate_structured", "simulated"]
