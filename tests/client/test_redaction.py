"""The redacting log filter and ``redact()``: no credential survives in a formatted record."""

from __future__ import annotations

import logging

import pytest

from django_omnisend.api import ApiKeyAuth, BearerAuth
from django_omnisend.redaction import MASK, RedactingFilter, install, redact, uninstall

SECRET = "s3cr3t-VALUE_123"


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {SECRET}",
        f"authorization: Omnisend-API-Key 64f0a1-{SECRET}",
        f"{{'Authorization': 'Bearer {SECRET}', 'Accept': 'application/json'}}",
        f'{{"Authorization": "Omnisend-API-Key {SECRET}"}}',
        f"X-API-KEY: {SECRET}",
        f"{{'X-API-KEY': '{SECRET}'}}",
        f"Omnisend-API-Key: {SECRET}",
        f"sent Bearer {SECRET} to the API",
        f"grant_type=authorization_code&code={SECRET}&code_verifier={SECRET}x",
        f"refresh_token={SECRET}&client_id=abc&client_secret={SECRET}",
        f"https://app.example/cb?state=xyz&code={SECRET}",
        f'{{"access_token": "{SECRET}", "refresh_token":"{SECRET}", "expires_in": 3600}}',
        f"{{'access_token': '{SECRET}', 'token_type': 'bearer'}}",
        f'{{"client_secret": "{SECRET}", "api_key": "{SECRET}"}}',
        f"?api_key={SECRET}&x=1",
    ],
)
def test_redact_removes_every_credential_form(text):
    cleaned = redact(text)
    assert SECRET not in cleaned
    assert MASK in cleaned


def test_redact_keeps_harmless_text():
    text = "POST /api/contacts -> 201 in 12 ms (status_code=201, attempt 1) client_id=abc"
    assert redact(text) == text
    assert redact("") == ""


def test_filter_rewrites_message_args_and_traceback():
    record = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "token response %s", ({"access_token": SECRET},), None
    )
    try:
        raise RuntimeError(f"Authorization: Bearer {SECRET}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record) is True
    formatted = logging.Formatter().format(record)
    assert SECRET not in formatted
    assert "token response" in formatted
    assert "RuntimeError" in formatted


def test_filter_leaves_clean_records_alone():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s items", (3,), None)
    RedactingFilter().filter(record)
    assert record.args == (3,)
    assert record.getMessage() == "3 items"


def test_package_loggers_have_the_filter(caplog):
    caplog.set_level(logging.DEBUG)
    logging.getLogger("django_omnisend.client").info("Authorization: Bearer %s", SECRET)
    logging.getLogger("django_omnisend.oauth").info("got %s", {"refresh_token": SECRET})
    assert SECRET not in caplog.text
    assert caplog.text.count(MASK) == 2


def test_install_on_third_party_loggers_and_children(caplog):
    logging.getLogger("thirdparty.sub")  # exists before install
    install("thirdparty")
    try:
        caplog.set_level(logging.DEBUG)
        logging.getLogger("thirdparty.sub").debug("code=%s", SECRET)
        assert SECRET not in caplog.text
    finally:
        uninstall("thirdparty")
    assert not logging.getLogger("thirdparty.sub").filters


def test_auth_reprs_never_show_the_secret():
    for auth in (BearerAuth(SECRET), ApiKeyAuth(f"abc123-{SECRET}")):
        for text in (repr(auth), str(auth), f"{auth}", repr([auth])):
            assert SECRET not in text
            assert "fingerprint=" in text
    assert ApiKeyAuth(f"abc123-{SECRET}").brand_id == "abc123"
    assert BearerAuth(SECRET).fingerprint == BearerAuth(SECRET).fingerprint
    assert BearerAuth(SECRET).fingerprint != BearerAuth(SECRET + "x").fingerprint


def test_auth_is_not_picklable():
    import pickle

    with pytest.raises(TypeError, match="credential"):
        pickle.dumps(BearerAuth(SECRET))
    with pytest.raises(ValueError):
        BearerAuth("")
