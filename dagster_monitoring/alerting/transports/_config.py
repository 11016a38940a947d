"""Config pieces every receiver shares: its name, its timeout, and how secrets are given.

A secret is written in YAML as ``{env: VAR_NAME}`` and resolved at load time, so a missing
variable fails validation naming the field (unless the caller allows it, to check a production
config on a laptop: then a placeholder stands in and the names are reported). A literal secret in a YAML file is refused (files
get committed); Python callers may pass a ``SecretStr`` or a plain string. Every resolved
secret is registered with :mod:`..redact` so it is masked in logs and errors.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, WrapValidator, field_validator

from ..durations import Duration
from ..redact import register_secret

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def _resolve_secret(value: Any, handler: Any, info: ValidationInfo) -> SecretStr:
    source = (info.context or {}).get("source")
    if isinstance(value, dict):
        if set(value) != {"env"} or not isinstance(value["env"], str):
            raise ValueError("write a secret as {env: VARIABLE_NAME}")
        name = value["env"]
        resolved = os.environ.get(name)
        if not resolved:
            context = info.context or {}
            if context.get("allow_missing_env"):  # validate-config / send-test --dry-run on a laptop
                context.setdefault("missing_env", []).append(name)
                return SecretStr(f"unset-{name}")
            raise ValueError(f"environment variable {name} is not set (or empty)")
        secret = SecretStr(resolved)
    elif isinstance(value, SecretStr):
        secret = value
    elif isinstance(value, str):
        if source == "yaml":
            raise ValueError("secrets must not be written into the config file; use {env: VARIABLE_NAME}")
        secret = SecretStr(value)
    else:
        raise ValueError("expected {env: VARIABLE_NAME} or a string")
    register_secret(secret.get_secret_value())
    return secret


SecretValue = Annotated[SecretStr, WrapValidator(_resolve_secret)]


def _base_url(value: str) -> str:
    if not value.startswith(("http://", "https://")):
        raise ValueError("must start with https:// (or http://)")
    return value.rstrip("/")


# The root URL of an HTTP API or page (Jira, ServiceNow, the card links' serve): a scheme, no trailing "/".
BaseUrl = Annotated[str, AfterValidator(_base_url)]


class ReceiverConfigBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="referenced by routes and the owners map")
    timeout: Duration = Field(default=timedelta(seconds=10), description="per attempt")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '_', '-' or '.', at most 64 characters")
        return value
