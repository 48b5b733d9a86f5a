"""ops's errors: one root, declared in the app's spec.

    OpsError
    ├── WebhookError             a delivery the receiver refuses (HTTP 4xx, logged, never run)
    │   ├── SignatureError       missing, forged, tampered or stale signature; wrong token
    │   ├── PayloadError         not JSON / form, wrong shape, too large
    │   └── UnknownEventError    a source or event type no normaliser knows
    ├── TemplateError            a workflow template that cannot run: a step needing a
    │                            missing step, a cycle, an unknown agent or action (at load)
    ├── WorkflowNotFoundError    no workflow with that id
    ├── WorkflowStateError       approve a workflow that waits for nothing, retry a running one
    ├── IntegrationError         an external service failed
    │   ├── TransientError       worth retrying: timeouts, 5xx, 429, connection refused
    │   ├── PermanentError       retrying cannot help: 4xx, bad credentials, bad request
    │   └── CircuitOpenError     the integration's breaker is open: not called at all
    ├── ScopeError               a tool used outside the scopes its step was granted
    └── EscalatedError           the workflow stopped and handed the case to a person
"""

from __future__ import annotations

from smallhold.errors import AppError


class OpsError(AppError):
    code = "ops_error"


class WebhookError(OpsError):
    http_status = 400
    code = "webhook_refused"


class SignatureError(WebhookError):
    http_status = 401
    code = "bad_signature"


class PayloadError(WebhookError):
    http_status = 400
    code = "bad_payload"


class UnknownEventError(WebhookError):
    http_status = 422
    code = "unknown_event"


class TemplateError(OpsError):
    exit_code = 2
    code = "template_invalid"


class WorkflowNotFoundError(OpsError):
    http_status = 404
    code = "workflow_not_found"


class WorkflowStateError(OpsError):
    http_status = 409
    code = "workflow_state"


class IntegrationError(OpsError):
    http_status = 502
    code = "integration_failed"

    def __init__(self, message: str, *, integration: str = "") -> None:
        super().__init__(message)
        self.integration = integration


class TransientError(IntegrationError):
    code = "integration_transient"

    def __init__(self, message: str, *, integration: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message, integration=integration)
        self.retry_after = retry_after  # seconds the service asked us to wait (Retry-After)


class PermanentError(IntegrationError):
    code = "integration_permanent"


class CircuitOpenError(IntegrationError):
    http_status = 503
    code = "circuit_open"


class ScopeError(OpsError):
    http_status = 403
    code = "scope_denied"


class EscalatedError(OpsError):
    code = "escalated"


__all__ = ["CircuitOpenError", "EscalatedError", "IntegrationError", "OpsError",
           "PayloadError", "PermanentError", "ScopeError", "SignatureError", "TemplateError",
           "TransientError", "UnknownEventError", "WebhookError", "WorkflowNotFoundError",
           "WorkflowStateError"]
