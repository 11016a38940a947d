"""Signature checks and the sources: config, as the webhook receiver and the loader use them."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from dagster_monitoring.alerting.config import ConfigError
from dagster_monitoring.config import load_config
from dagster_monitoring.sources.webhooks import WebhookRejected, check_signature, sign, verify_signature

SECRET = "whsec_5Tg8Kp1Wm6Yc3Qa"
BODY = b'{"event":"sync_end","connector_id":"a"}'


def test_hex_hmac_sha256_of_the_raw_body_in_either_case_and_prefixed():
    digest = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY) == digest
    assert verify_signature(SECRET, BODY, digest)
    assert verify_signature(SECRET, BODY, digest.upper())  # Fivetran sends upper-case hex
    assert verify_signature(SECRET, BODY, f"sha256={digest}")


@pytest.mark.parametrize(
    "secret, body, signature",
    [
        (SECRET, BODY + b" ", None),  # a body re-serialised by a proxy no longer matches
        ("other-secret", BODY, None),
        (SECRET, BODY, ""),
        ("", BODY, None),
        (SECRET, BODY, "not hex ü"),
    ],
)
def test_anything_else_does_not_verify(secret, body, signature):
    given = sign(SECRET, BODY) if signature is None else signature
    assert not verify_signature(secret, body, given)


def test_rejections_name_the_header_never_the_secret_or_digest():
    with pytest.raises(WebhookRejected) as missing:
        check_signature(SECRET, BODY, {}, "X-Fivetran-Signature-256")
    with pytest.raises(WebhookRejected) as bad:
        check_signature(SECRET, BODY, {"X-Fivetran-Signature-256": sign("x", BODY)}, "X-Fivetran-Signature-256")
    assert missing.value.status == bad.value.status == 401
    for text in (missing.value.message, bad.value.message):
        assert SECRET not in text and sign("x", BODY) not in text and "X-Fivetran-Signature-256" in text


def test_invalid_sources_fail_at_load_naming_the_field(tmp_path, monkeypatch):
    monkeypatch.setenv("FT_KEY", "key_1234567")
    path = tmp_path / "monitoring.yaml"
    path.write_text(
        """
sources:
  fivetran:
    api_key: {env: FT_KEY}
    webhook_secret: literal-in-the-file
    settle: soon
  dbt_cloud:
    api_token: {env: DBT_CLOUD_TOKEN_UNSET}
    jobz: [1]
"""
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = str(err.value)
    for expected in (
        "sources.fivetran.webhook_secret: secrets must not be written into the config file",
        "sources.fivetran.settle: invalid duration 'soon'",
        "sources.dbt_cloud.account_id: Field required",
        "sources.dbt_cloud.api_token: environment variable DBT_CLOUD_TOKEN_UNSET is not set",
        "sources.dbt_cloud.jobz: unknown key",
    ):
        assert expected in text, text
    assert "literal-in-the-file" not in text and "key_1234567" not in text


def test_a_source_needs_a_way_in(tmp_path, monkeypatch):
    path = tmp_path / "monitoring.yaml"
    path.write_text("sources:\n  fivetran: {owners: [team:x]}\n  dbt_cloud: {account_id: 1}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "sources.fivetran: give api_key and api_secret (polling), webhook_secret (webhooks), or both" in str(err.value)
    assert "sources.dbt_cloud: give api_token (polling), webhook_secret (webhooks), or both" in str(err.value)
