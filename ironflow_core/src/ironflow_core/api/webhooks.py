"""Webhook configuration, signature checks and header forwarding (API-40..43).

The ``webhooks`` map of ``ironflow.yaml`` is parsed and checked once at
start-up: a misconfigured signature (short secret, reserved header) stops the
server instead of silently accepting unsigned requests. Signatures are
verified over the exact request bytes, before anything else looks at them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from ironflow_core.errors import ConfigError

RESERVED_HEADERS = frozenset({
    "authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key",
    "x-auth-token", "x-session-token", "x-amz-security-token", "x-goog-api-key",
    "x-forwarded-authorization", "x-auth-request-access-token", "cf-access-client-secret",
    "cf-access-jwt-assertion",
})
MIN_SECRET_BYTES = 16
MIN_FORWARDED_BYTES = 8
MAX_PREFIX_BYTES = 64
INVALID_SIGNATURE = "invalid webhook signature"

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ENV_NAME = re.compile(r"[A-Za-z0-9_]+")


class WebhookRequestError(Exception):
    """A request that breaks a webhook rule; ``status`` is 400 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen
class SignatureConfig:
    header: str
    secret: bytes = attrs.field(repr=False)
    prefix: str = "sha256="
    secret_env: str = ""
    """The variable the secret came from: hidden from flows' ``env()``."""


@attrs.frozen
class WebhookConfig:
    name: str
    flow: str
    forward_headers: tuple[str, ...] = ()
    signature: SignatureConfig | None = None


def _header_name(webhook: str, value: Any, what: str) -> str:
    if not isinstance(value, str) or not _HEADER_NAME.fullmatch(value):
        raise ConfigError(f"webhook '{webhook}': {what} must be a valid HTTP header name")
    name = value.lower()
    if name in RESERVED_HEADERS:
        raise ConfigError(
            f"webhook '{webhook}': {what} '{name}' is a reserved credential header"
        )
    return name


def _signature(webhook: str, raw: Any, forwarded: Sequence[str],
               env: Mapping[str, str]) -> SignatureConfig:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"webhook '{webhook}': signature must be a map")
    unknown = set(raw) - {"type", "header", "secret_env", "prefix"}
    if unknown:
        raise ConfigError(
            f"webhook '{webhook}': unknown signature field(s): {', '.join(sorted(map(str, unknown)))}"
        )
    if raw.get("type", "hmac_sha256") != "hmac_sha256":
        raise ConfigError(f"webhook '{webhook}': signature type must be 'hmac_sha256'")
    header = _header_name(webhook, raw.get("header"), "signature header")
    if header in forwarded:
        raise ConfigError(
            f"webhook '{webhook}': signature header '{header}' must not also be forwarded"
        )
    secret_env = raw.get("secret_env")
    if not isinstance(secret_env, str) or not _ENV_NAME.fullmatch(secret_env):
        raise ConfigError(
            f"webhook '{webhook}': signature secret_env must be an environment variable "
            "name made of letters, digits and '_'"
        )
    secret = env.get(secret_env)
    if secret is None:
        raise ConfigError(f"webhook '{webhook}': environment variable {secret_env} is not set")
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"webhook '{webhook}': the secret in {secret_env} must be at least "
            f"{MIN_SECRET_BYTES} bytes"
        )
    prefix = raw.get("prefix", "sha256=")
    if (not isinstance(prefix, str) or not prefix.isascii()
            or len(prefix) > MAX_PREFIX_BYTES):
        raise ConfigError(
            f"webhook '{webhook}': signature prefix must be ASCII text of at most "
            f"{MAX_PREFIX_BYTES} bytes"
        )
    return SignatureConfig(header=header, secret=secret.encode("utf-8"), prefix=prefix,
                           secret_env=secret_env)


def _webhook(name: Any, raw: Any, env: Mapping[str, str]) -> WebhookConfig:
    if not isinstance(name, str) or not name:
        raise ConfigError("webhook names must be non-empty strings")
    if isinstance(raw, str):
        return WebhookConfig(name=name, flow=raw)
    if not isinstance(raw, Mapping):
        raise ConfigError(f"webhook '{name}' must be a flow path or a map with 'flow'")
    unknown = set(raw) - {"flow", "forward_headers", "signature"}
    if unknown:
        raise ConfigError(
            f"webhook '{name}': unknown field(s): {', '.join(sorted(map(str, unknown)))}"
        )
    flow = raw.get("flow")
    if not isinstance(flow, str) or not flow:
        raise ConfigError(f"webhook '{name}': 'flow' must be a non-empty path")
    listed = raw.get("forward_headers") or []
    if not isinstance(listed, list):
        raise ConfigError(f"webhook '{name}': forward_headers must be a list of header names")
    forwarded = tuple(dict.fromkeys(_header_name(name, h, "forwarded header") for h in listed))
    signature = raw.get("signature")
    return WebhookConfig(
        name=name,
        flow=flow,
        forward_headers=forwarded,
        signature=None if signature is None else _signature(name, signature, forwarded, env),
    )


def parse_webhooks(raw: Any, env: Mapping[str, str]) -> dict[str, WebhookConfig]:
    """The ``webhooks`` map of ironflow.yaml; any problem is a ``ConfigError``."""
    if not isinstance(raw, Mapping):
        raise ConfigError("'webhooks' in the config file must be a map of name -> flow")
    return {str(name): _webhook(name, value, env) for name, value in raw.items()}


def _values(headers: Sequence[tuple[bytes, bytes]], name: str) -> list[bytes]:
    key = name.encode("ascii")
    return [value for field, value in headers if field.lower() == key]


def verify_signature(signature: SignatureConfig, headers: Sequence[tuple[bytes, bytes]],
                     body: bytes) -> None:
    """API-41: exactly one header, the prefix, hex, and a constant-time HMAC match."""
    values = _values(headers, signature.header)
    if len(values) != 1:
        raise WebhookRequestError(403, INVALID_SIGNATURE)
    prefix = signature.prefix.encode("ascii")
    value = values[0].strip()
    if not value.startswith(prefix):
        raise WebhookRequestError(403, INVALID_SIGNATURE)
    try:
        provided = bytes.fromhex(value[len(prefix):].decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRequestError(403, INVALID_SIGNATURE) from None
    expected = hmac.new(signature.secret, body, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, provided):
        raise WebhookRequestError(403, INVALID_SIGNATURE)


def forwarded_headers(webhook: WebhookConfig,
                      headers: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """API-43: the ``_headers`` overlay (lower-case names); absent headers are left out."""
    result: dict[str, str] = {}
    for name in webhook.forward_headers:
        values = _values(headers, name)
        if not values:
            continue
        if len(values) > 1:
            raise WebhookRequestError(400, f"forwarded header '{name}' must appear only once")
        raw = values[0]
        if any((b < 0x20 and b != 0x09) or b > 0x7E for b in raw):
            raise WebhookRequestError(400, f"forwarded header '{name}' must be visible text")
        if sum(1 for b in raw if b not in b" \t") < MIN_FORWARDED_BYTES:
            raise WebhookRequestError(
                400,
                f"forwarded header '{name}' must have at least {MIN_FORWARDED_BYTES} "
                "non-whitespace bytes",
            )
        result[name] = raw.decode("ascii").strip()
    return result
