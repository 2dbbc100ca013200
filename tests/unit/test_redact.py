"""Credentials masked in what recops prints and logs (recops.redact)."""

import json
import logging

import pytest

from recops.redact import SECRET_ENV, RedactingFilter, install_log_redaction, redact, secret_values

pytestmark = pytest.mark.unit

CASES = {
    "URI password": (
        "postgresql://mlflow:hunter2x@db.internal:5432/mlflow",
        "postgresql://mlflow:***@db.internal:5432/mlflow",
    ),
    "URI password, quoted": (
        "postgresql+psycopg2://mlflow:p%40ss%2Fw0rd@db/mlflow?sslmode=require",
        "postgresql+psycopg2://mlflow:***@db/mlflow?sslmode=require",
    ),
    "URI password with a raw @": ("http://admin:p@ss@mlflow:5000/api", "http://admin:***@mlflow:5000/api"),
    "URI inside a sentence": (
        "MLflow store https://ci:tok3n@mlflow.example.com: RESOURCE_DOES_NOT_EXIST",
        "MLflow store https://ci:***@mlflow.example.com: RESOURCE_DOES_NOT_EXIST",
    ),
    "two URIs": ("a://u:p1@h1/x b://v:p2@h2/y", "a://u:***@h1/x b://v:***@h2/y"),
    "user without password stays": (
        "postgresql+psycopg2://postgres@127.0.0.1:5432/mlflow",
        "postgresql+psycopg2://postgres@127.0.0.1:5432/mlflow",
    ),
    "host and port stay": ("http://127.0.0.1:5000/api/2.0", "http://127.0.0.1:5000/api/2.0"),
    "sqlite path stays": ("sqlite:////home/x/mlflow.db", "sqlite:////home/x/mlflow.db"),
    "token query parameter": ("https://h/x?token=abc123&page=2", "https://h/x?token=***&page=2"),
    "api_key query parameter": ("https://h/x?page=2&api_key=abc123", "https://h/x?page=2&api_key=***"),
    "access_token": ("https://h/cb#access_token=abc123", "https://h/cb#access_token=***"),
    "password parameter (libpq)": (
        "host=db user=mlflow password=hunter2x dbname=mlflow",
        "host=db user=mlflow password=*** dbname=mlflow",
    ),
    "presigned S3 URL": (
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20250101"
        "&X-Amz-Security-Token=FwoGZX&X-Amz-Signature=0a1b2c",
        "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20250101"
        "&X-Amz-Security-Token=***&X-Amz-Signature=***",
    ),
    "environment line": ("MLFLOW_TRACKING_PASSWORD=hunter2x", "MLFLOW_TRACKING_PASSWORD=***"),
    "JSON field": ('{"user": "ci", "password": "hunter2x"}', '{"user": "ci", "password": "***"}'),
    "dict repr": ("{'api_key': 'abc123', 'k': 1}", "{'api_key': '***', 'k': 1}"),
    "Authorization header": ("Authorization: Bearer abc.def-123", "Authorization: Bearer ***"),
    "Authorization basic": ("authorization: Basic dXNlcjpwYXNz", "authorization: Basic ***"),
    "Authorization, token scheme": ("Authorization: token ghp_abc123", "Authorization: token ***"),
    "Authorization, no scheme": ("Authorization=abc123", "Authorization=***"),
    "Authorization in a dict": ("{'Authorization': 'Bearer abc123'}", "{'Authorization': 'Bearer ***'}"),
    "bare Bearer": ("sent Bearer eyJhbGciOi.J9.x_y", "sent Bearer ***"),
    "prose stays": (
        "this API needs an 'Authorization: Bearer <token>' header",
        "this API needs an 'Authorization: Bearer <token>' header",
    ),
    "prose about a bearer token stays": ("a bearer token is missing", "a bearer token is missing"),
    "count of tokens stays": ("max_tokens=10 tokens=5", "max_tokens=10 tokens=5"),
    "nothing to mask": (
        "registered version 3 of session-recommender",
        "registered version 3 of session-recommender",
    ),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_redact(case):
    text, expected = CASES[case]
    assert redact(text, secrets=[]) == expected


@pytest.mark.parametrize("name", SECRET_ENV)
def test_secret_environment_values_are_masked_wherever_they_appear(name, monkeypatch):
    for other in SECRET_ENV:
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(name, "Zq9-unguessable/value")
    text = "got Zq9-unguessable/value back, quoted Zq9-unguessable%2Fvalue, inline xZq9-unguessable/valuex"
    assert redact(text) == "got *** back, quoted ***, inline x***x"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"RECOPS_API_TOKEN": "abc"}, []),  # too short to mask
        ({"RECOPS_API_TOKEN": "abcd", "AWS_SECRET_ACCESS_KEY": "abcdefgh"}, ["abcdefgh", "abcd"]),
        ({"PATH": "/usr/bin:/bin"}, []),  # only the secret variables
    ],
)
def test_secret_values(environ, expected):
    assert secret_values(environ) == expected


def test_the_filter_masks_message_args_and_traceback():
    record = logging.LogRecord(
        "recops", logging.INFO, __file__, 1, "store %s at %s", ("http://u:pw1234@h/x", "token=abc"), None
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "store http://u:***@h/x at token=***"
    try:
        raise RuntimeError("cannot reach postgresql://u:pw1234@db/mlflow")
    except RuntimeError:
        import sys

        failed = logging.LogRecord("recops", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    RedactingFilter().filter(failed)
    assert "postgresql://u:***@db/mlflow" in failed.exc_text and "pw1234" not in failed.exc_text


def test_installed_on_the_root_handlers_every_logger_is_masked(monkeypatch):
    import io

    monkeypatch.setenv("RECOPS_API_TOKEN", "verbatim-secret-token")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        install_log_redaction()
        install_log_redaction()  # once per handler
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logging.getLogger("some.library").warning(
            "retrying %s with verbatim-secret-token", "https://a:b12345@h"
        )
    finally:
        root.removeHandler(handler)
    assert stream.getvalue() == "retrying https://a:***@h with ***\n"


def test_the_cli_log_handler_masks(monkeypatch, capsys):
    from recops.cli.common import log_to_stderr

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "cli-secret-9876")
    log_to_stderr()
    try:
        logging.getLogger("recops.test").info(
            "password cli-secret-9876 in https://ci:cli-secret-9876@mlflow/"
        )
    finally:
        logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    err = capsys.readouterr().err
    assert "cli-secret-9876" not in err and "https://ci:***@mlflow/" in err


def test_an_alert_and_its_record_carry_no_credential(monkeypatch):
    from recops.continuous.alerts import read_alerts, send_alert
    from recops.store import open_store

    monkeypatch.delenv("RECOPS_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("RECOPS_API_TOKEN", "s3cr3t-api-token")
    error = "could not reach postgresql://mlflow:hunter2@db:5432/mlflow (token s3cr3t-api-token)"
    sent = send_alert("cycle_failed", error, detail=error)
    (recorded,) = read_alerts(open_store().child("monitoring"))
    for alert in (sent, recorded):
        assert "hunter2" not in json.dumps(alert) and "s3cr3t-api-token" not in json.dumps(alert)
        assert "postgresql://mlflow:***@db:5432/mlflow" in alert["message"]
