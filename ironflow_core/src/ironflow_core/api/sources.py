"""Where a requested flow comes from, and loading it under admission (API-10..13, API-30/31).

A request names exactly one of ``source``, ``source_base64`` or ``file``.
Files are confined to ``flows_dir`` when one is configured: a path that
escapes it is indistinguishable from a missing file, and a file that fails to
load is reported with a fixed message, so no response ever reveals what lies
outside the root or what a file contains. Lua evaluation runs in a worker
thread, bounded by ``IRONFLOW_MAX_CONCURRENT_FLOW_LOADS``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Mapping
from functools import partial
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ironflow_core.api.errors import ApiError, bad_request, not_found, unavailable
from ironflow_core.api.flowcache import FlowCache, flow_key
from ironflow_core.engine.events import notify
from ironflow_core.errors import FlowLoadError
from ironflow_core.loading import in_stoppable_thread
from ironflow_core.model import FlowDefinition, ProcessEventType
from ironflow_core.redact import redact_urls
from ironflow_core.specs import CancelFlag

if TYPE_CHECKING:
    from ironflow_core.registry import Registry

log = logging.getLogger("ironflow.api")

KINDS = ("source", "source_base64", "file")
NONE_GIVEN = "Exactly one of 'source', 'source_base64', or 'file' is required"
SEVERAL_GIVEN = "Only one of 'source', 'source_base64', or 'file' may be provided"
FILE_NOT_FOUND = "Flow file not found"
FILE_LOAD_FAILED = "Failed to load flow file"
LOAD_SLOT_WAIT_SECONDS = 1.0
"""A burst of requests queues this long for a load slot before 503.

Upstream fails at once; at 0.6 ms per load, a 50-client burst then loses most
requests to 503 although every one of them would be served within
milliseconds. Loads in progress stay bounded, which is what the limit is for.
"""
ADHOC_FORBIDDEN = (
    "Ad-hoc flow sources are disabled on this server (allow_adhoc_flows=false); "
    "use 'file' with a flow from the configured flows_dir"
)


class FlowLoadFailed(ApiError):
    """A 400 for a flow that did not load; ``detail`` is what validation reports."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(400, message)
        self.detail = detail


@attrs.frozen
class Requested:
    """The one flow source a request named."""

    kind: str
    value: str

    @property
    def inline(self) -> bool:
        """Whether the flow came in the request (``source``/``source_base64``) rather than from a file."""
        return self.kind != "file"


@attrs.frozen
class FlowFile:
    """A flow file resolved inside ``flows_dir``, and the directory its run sees as ``_flow_dir``."""
    path: str
    flow_dir: str


def pick_source(body: Mapping[str, Any]) -> Requested:
    """API-10: ``null`` counts as absent; the value must be a string (else 422)."""
    present = [kind for kind in KINDS if body.get(kind) is not None]
    if not present:
        raise bad_request(NONE_GIVEN)
    if len(present) > 1:
        raise bad_request(SEVERAL_GIVEN)
    kind = present[0]
    value = body[kind]
    if not isinstance(value, str):
        raise ApiError(422, f"'{kind}' must be a string")
    return Requested(kind, value)


def _inside(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def resolve_flow_file(flows_dir: str | None, file: str) -> FlowFile:
    """API-30/31: the file to load and the ``_flow_dir`` it gives the run."""
    if flows_dir is None:
        if os.path.isabs(file):
            return FlowFile(file, os.path.dirname(file))
        if not os.path.exists(file):
            raise not_found(f"{FILE_NOT_FOUND}: {file}")
        return FlowFile(file, os.path.dirname(file))
    try:
        root = os.path.realpath(flows_dir, strict=True)
    except OSError:
        root = ""
    if not root or not os.path.isdir(root) or not os.access(root, os.R_OK | os.X_OK):
        raise bad_request("Configured flows_dir is not accessible")
    if not file or ".." in PurePath(file).parts or "\0" in file:
        raise not_found(FILE_NOT_FOUND)
    if os.path.isabs(file):
        lexical = os.path.normpath(file)
        configured = os.path.normpath(os.path.abspath(flows_dir))
        if not (_inside(lexical, root) or _inside(lexical, configured)):
            raise not_found(FILE_NOT_FOUND)
        candidate = lexical
    else:
        candidate = os.path.join(root, file)
    try:
        real = os.path.realpath(candidate, strict=True)
    except OSError:
        raise not_found(FILE_NOT_FOUND) from None
    if not _inside(real, root) or not os.path.isfile(real):
        raise not_found(FILE_NOT_FOUND)
    return FlowFile(real, os.path.dirname(real))


def decode_base64(text: str, limit: int) -> str:
    """API-12: the standard alphabet with canonical padding, size-checked before decoding."""
    stripped = text.rstrip("=")
    decoded_size = len(stripped) * 3 // 4
    if decoded_size > limit:
        raise bad_request(
            f"Decoded 'source_base64' exceeds the {limit}-byte flow source limit "
            "(IRONFLOW_MAX_FLOW_SOURCE_BYTES)"
        )
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
        if base64.b64encode(raw).decode("ascii") != text:
            raise ValueError("non-canonical encoding or padding")
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise bad_request(f"Invalid base64 in 'source_base64': {exc}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(f"Base64 payload is not valid UTF-8: {exc}") from None


@attrs.define
class _Loading:
    """A load in progress that requests for the same source wait for."""

    done: trio.Event = attrs.field(factory=trio.Event)
    shared: bool = False
    """The result went to the cache (deterministic and loaded without error)."""


class FlowLoader:
    """Loads flows in worker threads, at most ``max_loads`` at once (ENG-121).

    An unchanged deterministic flow is not evaluated again (``api/flowcache.py``):
    an inline source found in the cache skips the load slot and the thread.
    """

    def __init__(self, registry: Registry, env: Mapping[str, str], max_loads: int,
                 max_source_bytes: int) -> None:
        self.registry = registry
        self.env = env
        self.max_source_bytes = max_source_bytes
        self._slots = trio.CapacityLimiter(max_loads)
        self.cache = FlowCache()
        self._loading: dict[tuple[str | None, str, bool], _Loading] = {}

    def text_of(self, requested: Requested) -> str:
        """The flow text of an inline request (base64 decoded within the size limit)."""
        if requested.kind == "source_base64":
            return decode_base64(requested.value, self.max_source_bytes)
        return requested.value

    async def load(self, requested: Requested, file: FlowFile | None, *,
                   analyze: bool = False) -> FlowDefinition:
        """Decode and evaluate the flow; failures are 400 with the API-13 texts."""
        text = None if file is not None else self.text_of(requested)
        if text is None:
            return await self._load_slot(text, file, analyze)
        key = flow_key(None, text, analyze)
        # Identical sources arriving together are evaluated once: the others
        # wait for that load, then take it from the cache. A flow that is not
        # deterministic (or failed) is loaded by each request itself.
        while True:
            cached = self.cache.get(key)
            if cached is not None:
                return cached
            loading = self._loading.get(key)
            if loading is None:
                break
            await loading.done.wait()
            if not loading.shared:
                return await self._load_slot(text, file, analyze)
        loading = self._loading[key] = _Loading()
        try:
            flow = await self._load_slot(text, file, analyze)
            loading.shared = flow.deterministic
            return flow
        finally:
            del self._loading[key]
            loading.done.set()

    async def _load_slot(self, text: str | None, file: FlowFile | None,
                         analyze: bool) -> FlowDefinition:
        acquired = False
        with trio.move_on_after(LOAD_SLOT_WAIT_SECONDS):
            await self._slots.acquire()
            acquired = True
        observers = getattr(self.registry, "observers", ())
        notify(observers, ProcessEventType.ADMISSION_DECIDED,
               "accepted" if acquired else "at_capacity", resource="flow_load")
        if not acquired:
            raise unavailable(
                "Too many flow loads in progress (IRONFLOW_MAX_CONCURRENT_FLOW_LOADS); "
                "retry later"
            )
        try:
            return await in_stoppable_thread(
                partial(self._load_sync, text, file, analyze), name="ironflow-load")
        finally:
            self._slots.release()
            notify(observers, ProcessEventType.ADMISSION_RELEASED, "released",
                   resource="flow_load")

    def _load_sync(self, text: str | None, file: FlowFile | None,
                   analyze: bool, stop: CancelFlag) -> FlowDefinition:
        from ironflow_core.loading import load_flow, read_flow_source
        from ironflow_core.specs import FlowSource

        if file is None:
            assert text is not None
            try:
                flow = load_flow(FlowSource(text=text), registry=self.registry, env=self.env,
                                 analyze=analyze, cancel=(stop,))
            except FlowLoadError as exc:
                detail = redact_urls(str(exc))
                raise FlowLoadFailed(f"Failed to parse flow: {detail}", detail) from None
            self.cache.put(flow_key(None, text, analyze), flow)
            return flow
        try:
            source = read_flow_source(file.path, self.env)
            key = flow_key(source.path, source.text, analyze)
            cached = self.cache.get(key)
            if cached is not None:
                return cached
            flow = load_flow(source, registry=self.registry, env=self.env, analyze=analyze,
                             cancel=(stop,))
            self.cache.put(key, flow)
            return flow
        except (FlowLoadError, OSError) as exc:
            log.warning("failed to load flow file %s: %s", file.path, redact_urls(str(exc)))
            raise FlowLoadFailed(FILE_LOAD_FAILED, FILE_LOAD_FAILED) from None
