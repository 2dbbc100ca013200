"""The bento API's bearer token rules (recops.serving.auth), without a server."""

import pytest

from recops.serving.auth import (
    OPEN_PATHS,
    TokenConfigError,
    auth_headers,
    bearer_credentials,
    is_open_path,
    refusal,
    service_token,
)

pytestmark = pytest.mark.unit

TOKEN = "s3cret-Token_1.2~3+/="


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"RECOPS_API_TOKEN": ""}, None),
        ({"RECOPS_API_TOKEN": "  "}, None),
        ({"RECOPS_API_TOKEN": TOKEN}, TOKEN),
        ({"RECOPS_API_TOKEN": f" {TOKEN}\n"}, TOKEN),  # a secret file's trailing newline
        ({"RECOPS_API_TOKEN": TOKEN, "RECOPS_API_TOKEN_REQUIRED": "1"}, TOKEN),
        ({"RECOPS_API_TOKEN_REQUIRED": "0"}, None),
    ],
)
def test_service_token(environ, expected):
    assert service_token(environ) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"RECOPS_API_TOKEN_REQUIRED": "1"}, "RECOPS_API_TOKEN_REQUIRED=1 but RECOPS_API_TOKEN is not set"),
        ({"RECOPS_API_TOKEN_REQUIRED": "1", "RECOPS_API_TOKEN": " "}, "is not set"),
        ({"RECOPS_API_TOKEN": "two words"}, "characters a bearer token cannot carry"),
        ({"RECOPS_API_TOKEN": "tökén"}, "characters a bearer token cannot carry"),
    ],
)
def test_service_token_refuses_settings_that_cannot_start_a_service(environ, message):
    with pytest.raises(TokenConfigError, match=message):
        service_token(environ)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        (f"Bearer {TOKEN}", TOKEN),
        (f"bearer {TOKEN}", TOKEN),  # the scheme is case-insensitive (RFC 7235)
        (f"BEARER   {TOKEN}  ", TOKEN),
        ("Bearer", None),
        ("Bearer ", None),
        (f"Basic {TOKEN}", None),
        (TOKEN, None),
    ],
)
def test_bearer_credentials(header, expected):
    assert bearer_credentials(header) == expected


@pytest.mark.parametrize("path", sorted(OPEN_PATHS))
def test_health_probes_are_open(path):
    assert is_open_path(path)
    assert refusal(TOKEN, path, None) is None


@pytest.mark.parametrize(
    "path",
    ["/recommend", "/recommend_batch", "/metrics", "/", "/docs.json", "/schema.json", "/healthz/", "/x"],
)
def test_everything_else_needs_the_token(path):
    assert not is_open_path(path)
    assert refusal(TOKEN, path, None) is not None
    assert refusal(TOKEN, path, f"Bearer {TOKEN}") is None


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "needs an 'Authorization: Bearer <token>' header"),
        ("", "needs an 'Authorization: Bearer <token>' header"),
        (f"Basic {TOKEN}", "needs an 'Authorization: Bearer <token>' header"),
        ("Bearer wrong", "not valid"),
        (f"Bearer {TOKEN}x", "not valid"),
        (f"Bearer {TOKEN[:-1]}", "not valid"),
        ("Bearer tökén", "not valid"),
        (f"Bearer {TOKEN}", None),
        (f"bearer {TOKEN}", None),
    ],
)
def test_refusal(header, reason):
    got = refusal(TOKEN, "/recommend", header)
    assert got == reason if reason is None else reason in got


def test_without_a_token_everything_passes():
    assert refusal(None, "/recommend", None) is None
    assert refusal(None, "/metrics", "Bearer anything") is None


def test_the_comparison_is_constant_time(monkeypatch):
    from recops.serving import auth

    compared = []

    def compare_digest(a, b):
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(auth.hmac, "compare_digest", compare_digest)
    assert refusal(TOKEN, "/recommend", "Bearer guess") is not None
    assert compared == [(b"guess", TOKEN.encode())]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {}),
        ({"RECOPS_API_TOKEN": ""}, {}),
        ({"RECOPS_API_TOKEN": TOKEN}, {"Authorization": f"Bearer {TOKEN}"}),
        ({"RECOPS_API_TOKEN": f"{TOKEN}\n"}, {"Authorization": f"Bearer {TOKEN}"}),
    ],
)
def test_auth_headers(environ, expected):
    assert auth_headers(environ) == expected


def test_auth_headers_read_the_environment_by_default(monkeypatch):
    monkeypatch.delenv("RECOPS_API_TOKEN", raising=False)
    assert auth_headers() == {}
    monkeypatch.setenv("RECOPS_API_TOKEN", TOKEN)
    assert auth_headers() == {"Authorization": f"Bearer {TOKEN}"}
