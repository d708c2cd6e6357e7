"""Webhook configuration, signature checks and header forwarding (API-40..43).

The ``webhooks`` map of ``ironflow.yaml`` is parsed and checked once at
start-up: a misconfigured signature (short secret, reserved header) stops the
server instead of silently accepting unsigned requests. Signatures are
verified over the exact request bytes, before anything else looks at them.

A webhook with a signature is authenticated by that signature alone (GitHub,
Stripe and Slack cannot send our API key): HMAC-SHA256 compared in constant
time and, for the schemes whose provider signs a timestamp (``stripe``,
``slack``), only within ``tolerance_seconds`` of now, so a captured request
cannot be replayed later. A webhook without a signature still needs the key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
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
MAX_PREFIX_BYTES = 64
INVALID_SIGNATURE = "invalid webhook signature"
STALE_SIGNATURE = "webhook signature timestamp is outside the allowed window"
DEFAULT_TOLERANCE_SECONDS = 300
SCHEMES = ("hmac_sha256", "stripe", "slack")
"""``hmac_sha256``: ``<prefix><hex HMAC of the body>`` in ``header`` (GitHub's
``X-Hub-Signature-256``); ``stripe``: ``Stripe-Signature: t=<ts>,v1=<hex>``
over ``<ts>.<body>``; ``slack``: ``X-Slack-Signature: v0=<hex>`` over
``v0:<ts>:<body>`` with the time in ``X-Slack-Request-Timestamp``."""
_DEFAULT_HEADERS = {"stripe": "stripe-signature", "slack": "x-slack-signature"}
SLACK_TIMESTAMP_HEADER = "x-slack-request-timestamp"

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ENV_NAME = re.compile(r"[A-Za-z0-9_]+")


class WebhookRequestError(Exception):
    """A request that breaks a webhook rule; ``status`` is 400 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@attrs.frozen
class SignatureConfig:
    """How a webhook's requests are signed: header, secret, prefix, scheme and clock tolerance."""
    header: str
    secret: bytes = attrs.field(repr=False)
    prefix: str = "sha256="
    scheme: str = "hmac_sha256"
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS
    secret_env: str = ""
    """The variable the secret came from: hidden from flows' ``env()``."""


@attrs.frozen
class WebhookConfig:
    """One webhook of ironflow.yaml: its flow, the headers it forwards and its signature check."""
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
    unknown = set(raw) - {"type", "header", "secret_env", "prefix", "tolerance_seconds"}
    if unknown:
        raise ConfigError(
            f"webhook '{webhook}': unknown signature field(s): {', '.join(sorted(map(str, unknown)))}"
        )
    scheme = raw.get("type", "hmac_sha256")
    if scheme not in SCHEMES:
        raise ConfigError(
            f"webhook '{webhook}': signature type must be one of {', '.join(SCHEMES)}"
        )
    header = _header_name(webhook, raw.get("header", _DEFAULT_HEADERS.get(scheme)),
                          "signature header")
    tolerance = raw.get("tolerance_seconds", DEFAULT_TOLERANCE_SECONDS)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance <= 0:
        raise ConfigError(
            f"webhook '{webhook}': signature tolerance_seconds must be a positive integer"
        )
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
                           scheme=scheme, tolerance_seconds=tolerance,
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
                     body: bytes, *, now: float | None = None) -> None:
    """API-41: exactly one header, the scheme's format, a constant-time HMAC match,
    and for timestamped schemes a timestamp within ``tolerance_seconds`` of ``now``."""
    values = _values(headers, signature.header)
    if len(values) != 1:
        raise WebhookRequestError(403, INVALID_SIGNATURE)
    value = values[0].strip()
    if signature.scheme == "stripe":
        timestamp, candidates = _stripe_fields(value)
        signed = timestamp + b"." + body
    elif signature.scheme == "slack":
        stamps = _values(headers, SLACK_TIMESTAMP_HEADER)
        if len(stamps) != 1 or not value.startswith(b"v0="):
            raise WebhookRequestError(403, INVALID_SIGNATURE)
        timestamp = stamps[0].strip()
        candidates = [value[3:]]
        signed = b"v0:" + timestamp + b":" + body
    else:
        prefix = signature.prefix.encode("ascii")
        if not value.startswith(prefix):
            raise WebhookRequestError(403, INVALID_SIGNATURE)
        timestamp = None
        candidates = [value[len(prefix):]]
        signed = body
    expected = hmac.new(signature.secret, signed, hashlib.sha256).digest()
    matched = False
    for candidate in candidates:
        try:
            provided = bytes.fromhex(candidate.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            continue
        matched |= hmac.compare_digest(expected, provided)
    if not matched:
        raise WebhookRequestError(403, INVALID_SIGNATURE)
    if timestamp is not None:
        _check_window(timestamp, signature.tolerance_seconds,
                      time.time() if now is None else now)


def _stripe_fields(value: bytes) -> tuple[bytes, list[bytes]]:
    """``t=<ts>,v1=<hex>[,v1=<hex>...]``: the timestamp and every v1 signature."""
    timestamp: bytes | None = None
    candidates: list[bytes] = []
    for part in value.split(b","):
        key, _, item = part.strip().partition(b"=")
        if key == b"t":
            timestamp = item
        elif key == b"v1":
            candidates.append(item)
    if timestamp is None or not candidates:
        raise WebhookRequestError(403, INVALID_SIGNATURE)
    return timestamp, candidates


def _check_window(timestamp: bytes, tolerance: int, now: float) -> None:
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise WebhookRequestError(403, INVALID_SIGNATURE)
    if abs(now - int(timestamp)) > tolerance:
        raise WebhookRequestError(403, STALE_SIGNATURE)


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
        result[name] = raw.decode("ascii").strip()
    return result


def signed_webhook_paths(webhooks: Mapping[str, WebhookConfig]) -> frozenset[str]:
    """Request paths the API key middleware leaves to the webhook's signature check."""
    return frozenset(f"/webhooks/{name}" for name, hook in webhooks.items()
                     if hook.signature is not None)
