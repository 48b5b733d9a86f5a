"""The one exception tree of smallhold.

Every error a user can meet is a subclass of :class:`SmallholdError`, and its message
says what happened and what to do next. The CLI prints the message and exits with the
error's ``exit_code``; the server maps ``http_status`` and ``openai_type`` to an
OpenAI-style error body.

    SmallholdError
    ├── ConfigError                  bad config file, SMALLHOLD_* variable or profile name
    ├── ModelError
    │   ├── UnknownModelError        no model of that name in the registry
    │   ├── ModelNotInstalledError   the PyPI package holding it is missing
    │   ├── ModelFileError           truncated, corrupted (sha256) or not a GGUF file
    │   └── ModelLoadError           llama.cpp refused to load the file
    ├── ResourceError
    │   ├── InsufficientMemoryError  predicted footprint does not fit in available RAM
    │   └── DevicePausedError        battery critical or device too hot: work paused
    ├── GenerationError
    │   ├── ContextOverflowError     the prompt does not fit the model's context
    │   ├── GenerationCancelled      the caller cancelled a generation
    │   ├── StructuredOutputError    no valid object after N tries
    │   └── InvalidSchemaError       a JSON schema no decoding grammar can be made from
    ├── BackendError                 a backend failed (remote server down, bad reply)
    ├── EmbeddingError               the embedding model is missing or broken
    ├── TraceError                   the trace database cannot be read or written
    ├── StoreError                   the profile's encrypted store
    │   ├── VaultNotFoundError       no vault yet for this profile
    │   ├── VaultLockedError         the vault exists but no key was given
    │   ├── WrongKeyError            the passphrase or key does not open the vault
    │   ├── VaultCorruptError        a vault file is damaged, emptied or missing
    │   ├── VaultBusyError           another process holds the vault for rekey or wipe
    │   ├── SchemaTooNewError        a newer smallhold wrote this database
    │   ├── RecordValidationError    a record does not match its collection's model
    │   ├── RecordNotFoundError      no record with that id
    │   └── SyncError
    │       ├── RelayUnreachableError   the relay did not answer
    │       ├── RelayProtocolError      the relay sent garbage, a forged or replayed batch
    │       ├── RelayRefusedError       the relay refused: wrong token, unknown group, quota
    │       ├── SyncNotAllowedError     the collection is not enabled, or is not one that syncs
    │       └── PairingError            the pairing code is wrong or expired
    └── AppError                     an app's own failures: each app's root lives in
                                     smallhold/apps/<app>/errors.py and is declared in
                                     its AppSpec (CodeAgentError, PocketError, ...)
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


class DevicePausedError(ResourceError):
    code = "device_paused"


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


class InvalidSchemaError(GenerationError):
    http_status = 400
    openai_type = "invalid_request_error"
    code = "invalid_json_schema"


class BackendError(SmallholdError):
    http_status = 502
    code = "backend_error"


class EmbeddingError(SmallholdError):
    code = "embedding_error"


class TraceError(SmallholdError):
    code = "trace_error"


class StoreError(SmallholdError):
    code = "store_error"


class VaultNotFoundError(StoreError):
    exit_code = 3
    code = "vault_not_found"


class VaultLockedError(StoreError):
    exit_code = 3
    http_status = 423
    code = "vault_locked"


class WrongKeyError(StoreError):
    exit_code = 3
    http_status = 403
    code = "wrong_key"


class VaultCorruptError(StoreError):
    code = "vault_corrupt"


class VaultBusyError(StoreError):
    http_status = 409
    code = "vault_busy"


class SchemaTooNewError(StoreError):
    code = "schema_too_new"


class RecordValidationError(StoreError):
    http_status = 422
    openai_type = "invalid_request_error"
    code = "record_invalid"


class RecordNotFoundError(StoreError):
    http_status = 404
    openai_type = "invalid_request_error"
    code = "record_not_found"


class SyncError(StoreError):
    code = "sync_error"


class RelayUnreachableError(SyncError):
    http_status = 503
    code = "relay_unreachable"


class RelayProtocolError(SyncError):
    http_status = 502
    code = "relay_protocol_error"


class RelayRefusedError(SyncError):
    http_status = 403
    code = "relay_refused"


class SyncNotAllowedError(SyncError):
    http_status = 403
    code = "sync_not_allowed"


class PairingError(SyncError):
    http_status = 403
    code = "pairing_failed"


class AppError(SmallholdError):
    """The base of every app's error root, so the CLI and the server treat them alike."""


__all__ = [
    "AppError",
    "BackendError",
    "ConfigError",
    "ContextOverflowError",
    "DevicePausedError",
    "EmbeddingError",
    "GenerationCancelled",
    "GenerationError",
    "InsufficientMemoryError",
    "InvalidSchemaError",
    "ModelError",
    "ModelFileError",
    "ModelLoadError",
    "ModelNotInstalledError",
    "PairingError",
    "RecordNotFoundError",
    "RecordValidationError",
    "RelayProtocolError",
    "RelayRefusedError",
    "RelayUnreachableError",
    "ResourceError",
    "SchemaTooNewError",
    "SmallholdError",
    "StoreError",
    "StructuredOutputError",
    "SyncError",
    "SyncNotAllowedError",
    "TraceError",
    "UnknownModelError",
    "VaultBusyError",
    "VaultCorruptError",
    "VaultLockedError",
    "VaultNotFoundError",
    "WrongKeyError",
]
