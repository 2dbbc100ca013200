"""The bento API's bearer token: which requests need it, how it is checked, how clients send it.

With ``$RECOPS_API_TOKEN`` set, every request to the service needs ``Authorization: Bearer
<token>``; without it the service is open (the local default). ``RECOPS_API_TOKEN_REQUIRED=1``
(production sets it) makes a missing token a startup error instead of an open service.

Open without a token, whatever the setting: the health probes (``/healthz``, ``/livez``,
``/readyz``), which a load balancer calls with no credentials. Everything else needs it,
``/metrics`` and the API docs (``/``, ``/docs.json``, ``/schema.json``) included: the metrics
tell request volumes and error rates to whoever asks and Prometheus sends a bearer token
(``authorization`` in a scrape config), and the docs describe an API the caller cannot use
without the token anyway (the contract is in the repository). Open is a list of exact paths, so
a route BentoML adds later is closed until someone opens it here.

The comparison is :func:`hmac.compare_digest` on bytes: its time does not depend on where a
guess first differs from the token.
"""

from __future__ import annotations

import hmac
import os
import string
from collections.abc import Mapping

TOKEN_ENV = "RECOPS_API_TOKEN"
TOKEN_REQUIRED_ENV = "RECOPS_API_TOKEN_REQUIRED"
OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})
SCHEME = "Bearer"
# RFC 6750's b64token: what a header can carry unquoted and unescaped
TOKEN_CHARS = frozenset(string.ascii_letters + string.digits + "-._~+/=")


class TokenConfigError(ValueError):
    """The token settings cannot start a service: required but unset, or not sendable."""


def service_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The token the service requires (None: the service is open), from ``environ`` (default:
    this process's). Raises TokenConfigError when RECOPS_API_TOKEN_REQUIRED=1 and no token is
    set, or when the token holds characters a bearer header cannot carry."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip() or None
    if token is None and env.get(TOKEN_REQUIRED_ENV, "0") == "1":
        raise TokenConfigError(
            f"{TOKEN_REQUIRED_ENV}=1 but {TOKEN_ENV} is not set: the service would answer anyone. "
            f"Set {TOKEN_ENV} to the API token (in ECS: the secret the task definition injects)"
        )
    if token is not None and not set(token) <= TOKEN_CHARS:
        raise TokenConfigError(
            f"{TOKEN_ENV} holds characters a bearer token cannot carry; use letters, digits and -._~+/="
        )
    return token


def is_open_path(path: str) -> bool:
    """Whether ``path`` answers without a token (the health probes)."""
    return path in OPEN_PATHS


def bearer_credentials(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value (the scheme is
    case-insensitive); None when the header is absent or of another scheme."""
    if not authorization:
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != SCHEME.lower():
        return None
    return credentials.strip() or None


def refusal(token: str | None, path: str, authorization: str | None) -> str | None:
    """Why a request for ``path`` with this ``Authorization`` header is refused (a 401), or None
    when it may pass: no token configured, an open path, or the right bearer token."""
    if token is None or is_open_path(path):
        return None
    offered = bearer_credentials(authorization)
    if offered is None:
        return f"this API needs an 'Authorization: {SCHEME} <token>' header"
    if not hmac.compare_digest(offered.encode(), token.encode()):
        return "the bearer token is not valid"
    return None


def auth_headers(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The headers a client of the service sends: ``{"Authorization": "Bearer <token>"}`` when
    RECOPS_API_TOKEN is set (in ``environ``, default this process's), else ``{}``."""
    env = os.environ if environ is None else environ
    token = env.get(TOKEN_ENV, "").strip()
    return {"Authorization": f"{SCHEME} {token}"} if token else {}
