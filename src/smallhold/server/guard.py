"""Who may call the OpenAI-compatible API: :mod:`smallhold.httpguard` with the server's policy.

On loopback (the default) the API has no key unless one is set, and that is safe only because
the guard refuses what a web page can send: a ``Host`` that is not this server (DNS rebinding),
a foreign ``Origin``, a body that is not JSON. ``--allow-remote`` opens the port to other
machines, so it needs an API key, and then any ``Host`` is accepted unless
``server.allowed_hosts`` names them.
"""

from __future__ import annotations

from starlette.responses import Response

from smallhold.config import ServerSettings
from smallhold.errors import ConfigError
from smallhold.httpguard import ANY_HOST, GuardPolicy
from smallhold.server.errors import ApiError

OPEN_PATHS = ("/health",)
ALLOW_HEADERS = ("authorization", "content-type", "x-smallhold-session")


def openai_error(status: int, code: str, message: str) -> Response:
    """A refusal of the guard, in the OpenAI error format the rest of the API uses."""
    return ApiError(status, message, code=code).response()


def server_policy(settings: ServerSettings, *, host: str, port: int | None,
                  api_key: str | None = None, allow_remote: bool = False) -> GuardPolicy:
    """The guard's policy for a server bound to ``host:port`` (``port`` None: any port, for a
    server whose port the kernel picks). ``api_key`` overrides ``settings.api_key``.

    Raises :class:`ConfigError` for a policy that would let any web page in: ``--allow-remote``
    or ``allowed_hosts = ["*"]`` without an API key.
    """
    key = api_key or settings.api_key.get_secret_value() or None
    hosts = list(settings.allowed_hosts)
    if key is None and allow_remote:
        raise ConfigError(
            "--allow-remote needs an API key: pass --api-key KEY, or set server.api_key in "
            "config.toml or SMALLHOLD_SERVER__API_KEY."
        )
    if key is None and ANY_HOST in hosts:
        raise ConfigError(
            "server.allowed_hosts = ['*'] lets any web page reach the API; set server.api_key "
            "(or pass --api-key) too, or list the host names instead."
        )
    if allow_remote and not hosts:
        hosts = [ANY_HOST]  # the key is what keeps others out; the names are not known here
    return GuardPolicy.for_bind(
        host, port, max_body_bytes=settings.max_body_bytes, extra_hosts=hosts, api_key=key,
        cors_origins=settings.cors_origins, open_paths=OPEN_PATHS,
        allow_headers=ALLOW_HEADERS,
    )
