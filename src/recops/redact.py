"""Credentials out of every line recops prints or logs.

:func:`redact` masks, wherever they appear in a text:

- the password of a URI's user info: ``postgresql://mlflow:s3cr%40t@db/mlflow`` ->
  ``postgresql://mlflow:***@db/mlflow`` (the user name stays: it says which account);
- the value of a parameter whose name says it is a secret (``token=``, ``api_key=``,
  ``password=``, ``X-Amz-Signature=``, ``X-Amz-Security-Token=``, ``client_secret=``, ...),
  in a query string, a libpq connection string, a ``NAME=value`` line or a JSON field;
- the credentials of an ``Authorization`` header and a ``Bearer <token>``;
- the values of the secret environment variables (:data:`SECRET_ENV`) wherever they appear
  verbatim (or URL-quoted), whatever surrounds them.

:class:`RedactingFilter` applies it to every log record a handler emits; the ``recops``
command installs it on the root logger's handlers (``recops.cli.common.log_to_stderr``).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

MASK = "***"

# Environment variables whose values are secrets; a value is masked wherever it appears.
SECRET_ENV = (
    "RECOPS_API_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "PGPASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PREFECT_API_KEY",
)
# Shorter values are not masked: a 1-3 character "secret" protects nothing, and masking it in
# every line (every "a", every "1") would make logs unreadable.
MIN_SECRET_CHARS = 4

# scheme://user:password@host -- the password may hold unquoted '@' (up to the last one before
# the host) but no '/', whitespace or quote.
_URI_PASSWORD = re.compile(r"(?P<keep>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@'\"]*:)[^\s/'\"]*(?=@)")
# name=value where the name says it holds a secret: query strings (?token=..&), libpq
# (password=...), environment dumps (MLFLOW_TRACKING_PASSWORD=...), presigned S3 URLs.
_SECRET_NAME = r"[\w.-]*(?:token|password|passwd|secret|api[_-]?key|signature)"
_SECRET_PARAM = re.compile(rf"(?i)(?P<keep>(?<![\w.-]){_SECRET_NAME}=)[^\s&;#'\",]+")
# "password": "..." in JSON or a Python dict's repr
_SECRET_FIELD = re.compile(
    rf"(?i)(?P<keep>(?P<q>['\"]){_SECRET_NAME}(?P=q)\s*:\s*(?P<v>['\"]))[^'\"]+(?=(?P=v))"
)
# Authorization: <scheme> <credentials>, and a bare "Bearer <token>" (the scheme capitalised as
# clients send it; "a bearer token" in prose is left alone). Credentials are RFC 7235's token68
# characters, so a placeholder such as "<token>" stays.
_TOKEN68 = r"[A-Za-z0-9._~+/=-]+"
_AUTHORIZATION = re.compile(
    r"(?i)(?P<keep>\bauthorization['\"]?\s*[:=]\s*['\"]?"
    rf"(?:(?:bearer|basic|token)\s+|(?!(?:bearer|basic|token)\b))){_TOKEN68}"
)
_BEARER = re.compile(rf"(?P<keep>\bBearer\s+){_TOKEN68}")


def secret_values(environ: Mapping[str, str] | None = None) -> list[str]:
    """The values of :data:`SECRET_ENV` set in ``environ`` (default: this process's), longest
    first so that a secret containing another is masked whole."""
    env = os.environ if environ is None else environ
    values = {env.get(name, "").strip() for name in SECRET_ENV}
    return sorted((v for v in values if len(v) >= MIN_SECRET_CHARS), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every credential it holds replaced by ``***`` (see the module docstring).

    ``secrets``: values to mask verbatim; default :func:`secret_values` of the environment.
    """
    for value in secret_values() if secrets is None else secrets:
        if value:
            text = text.replace(value, MASK)
            quoted = quote(value, safe="")
            if quoted != value:
                text = text.replace(quoted, MASK)
    for pattern in (_URI_PASSWORD, _SECRET_PARAM, _SECRET_FIELD, _AUTHORIZATION, _BEARER):
        text = pattern.sub(rf"\g<keep>{MASK}", text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: each record's message (its ``msg`` with ``args`` applied), traceback
    and stack are redacted before any formatter sees them. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let the handler report it as logging does
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a :class:`RedactingFilter` to each handler of ``logger`` (default: the root logger)
    that has none yet. Records of every logger that propagates to it pass those handlers."""
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
