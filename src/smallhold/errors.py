"""The one exception tree of smallhold.

Every error a user can meet is a subclass of :class:`SmallholdError`, and its message
says what happened and what to do next. The CLI prints the message and exits with the
error's ``exit_code``; the server maps ``http_status`` and ``openai_type`` to an
OpenAI-style error body.

    SmallholdError
    ├── ConfigError                  bad config file or SMALLHOLD_* variable
    ├── ModelError
    │   ├── UnknownModelError        no model of that name in the registry
    │   ├── ModelNotInstalledError   the PyPI package holding it is missing
    │   ├── ModelFileError           truncated, corrupted (sha256) or not a GGUF file
    │   └── ModelLoadError           llama.cpp refused to load the file
    ├── ResourceError
    │   └── InsufficientMemoryError  predicted footprint does not fit in available RAM
    ├── GenerationError
    │   ├── ContextOverflowError     the prompt does not fit the model's context
    │   ├── GenerationCancelled      the caller cancelled a generation
    │   └── StructuredOutputError    no valid object after N tries
    ├── BackendError                 a backend failed (remote server down, bad reply)
    ├── EmbeddingError               the embedding model is missing or broken
    └── TraceError                   the trace database cannot be read or written
"""

from __future__ import annotations


class SmallholdError(Exception):
    """Base of every smallhold error; ``str(err)`` is the user-facing message."""

    exit_code: int = 1
    http_status: int = 500
    openai_type: str = "server_error"
    code: str = "internal_error"


class ConfigError(SmallholdError):
    exit_code = 2
    code = "config_error"


class ModelError(SmallholdError):
    code = "model_error"


class UnknownModelError(ModelError):
    http_status = 404
    openai_type = "invalid_request_error"
    code = "model_not_found"


class ModelNotInstalledError(ModelError):
    http_status = 404
    openai_type = "invalid_request_error"
    code = "model_not_installed"


class ModelFileError(ModelError):
    code = "model_file_invalid"


class ModelLoadError(ModelError):
    code = "model_load_failed"


class ResourceError(SmallholdError):
    http_status = 503
    code = "resource_unavailable"


class InsufficientMemoryError(ResourceError):
    code = "insufficient_memory"


class GenerationError(SmallholdError):
    code = "generation_failed"


class ContextOverflowError(GenerationError):
    http_status = 400
    openai_type = "invalid_request_error"
    code = "context_length_exceeded"


class GenerationCancelled(GenerationError):
    http_status = 499
    code = "cancelled"


class StructuredOutputError(GenerationError):
    http_status = 422
    openai_type = "invalid_request_error"
    code = "structured_output_invalid"


class BackendError(SmallholdError):
    http_status = 502
    code = "backend_error"


class EmbeddingError(SmallholdError):
    code = "embedding_error"


class TraceError(SmallholdError):
    code = "trace_error"


__all__ = [
    "BackendError",
    "ConfigError",
    "ContextOverflowError",
    "EmbeddingError",
    "GenerationCancelled",
    "GenerationError",
    "InsufficientMemoryError",
    "ModelError",
    "ModelFileError",
    "ModelLoadError",
    "ModelNotInstalledError",
    "ResourceError",
    "SmallholdError",
    "StructuredOutputError",
    "TraceError",
    "UnknownModelError",
]
