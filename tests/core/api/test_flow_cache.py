"""The API's loaded-flow cache (issue 17): unchanged deterministic flows are not evaluated again."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from ironflow_core.api.flowcache import FlowCache, flow_key
from ironflow_core.api.sources import FlowLoader, FlowLoadFailed, Requested, resolve_flow_file
from ironflow_core.registry import default_registry

PLAIN = """
local flow = Flow.new("cached")
flow:step("a", nodes.log({ message = env("GREETING") or "none" }))
return flow
"""


@pytest.fixture(scope="module")
def registry():
    return default_registry()


def loader(registry, **env: str) -> FlowLoader:
    return FlowLoader(registry, {"GREETING": "hi", **env}, max_loads=8,
                      max_source_bytes=1 << 20)


def load_inline(flows: FlowLoader, text: str, analyze: bool = False):
    return trio.run(lambda: flows.load(Requested("source", text), None, analyze=analyze))


def test_an_unchanged_inline_flow_is_loaded_once(registry) -> None:
    flows = loader(registry)
    first = load_inline(flows, PLAIN)
    assert first.deterministic and first.steps[0].config["message"] == "hi"
    assert load_inline(flows, PLAIN) is first
    assert (flows.cache.hits, len(flows.cache)) == (1, 1)
    # the analysis flag is part of what a load depends on
    assert load_inline(flows, PLAIN, analyze=True) is not first
    assert load_inline(flows, PLAIN + "\n") is not first


@pytest.mark.parametrize("call", ["uuid4()", "now_rfc3339()", "tostring(now_unix_ms())",
                                  "tostring(math.random())", "(print('x') or 'p')",
                                  "(log('info', 'x') or 'l')"])
def test_a_flow_that_reads_the_clock_or_randomness_is_evaluated_every_time(
    registry, call: str
) -> None:
    text = f'local flow = Flow.new("f")\nflow:step({call}, nodes.log({{}}))\nreturn flow\n'
    flows = loader(registry)
    first = load_inline(flows, text)
    assert not first.deterministic
    assert load_inline(flows, text) is not first
    assert len(flows.cache) == 0


def test_an_edited_flow_file_is_loaded_again(registry, tmp_path: Path) -> None:
    path = tmp_path / "f.lua"
    path.write_text(PLAIN)
    flows = loader(registry)
    file = resolve_flow_file(str(tmp_path), "f.lua")

    def load():
        return trio.run(lambda: flows.load(Requested("file", "f.lua"), file))

    first = load()
    assert load() is first
    path.write_text(PLAIN.replace("cached", "edited"))
    assert load().name == "edited"
    path.write_text("return 42")
    with pytest.raises(FlowLoadFailed):
        load()


def test_failures_are_not_kept(registry) -> None:
    flows = loader(registry)
    for _ in range(2):
        with pytest.raises(FlowLoadFailed):
            load_inline(flows, "return nil")
    assert len(flows.cache) == 0


def test_the_cache_is_bounded_least_recently_used_first(registry) -> None:
    flows = loader(registry)
    cache = flows.cache = FlowCache(entries=2)
    texts = [PLAIN.replace("cached", name) for name in ("a", "b", "c")]
    a = load_inline(flows, texts[0])
    load_inline(flows, texts[1])
    assert load_inline(flows, texts[0]) is a  # a is now the most recent
    load_inline(flows, texts[2])  # evicts b
    assert len(cache) == 2
    assert cache.get(flow_key(None, texts[1], False)) is None
    assert cache.get(flow_key(None, texts[0], False)) is a


def test_identical_sources_arriving_together_are_evaluated_once(registry) -> None:
    flows = loader(registry)
    flows.cache = FlowCache()
    loads = 0
    real = flows._load_sync

    def counting(*args):
        nonlocal loads
        loads += 1
        return real(*args)

    flows._load_sync = counting  # type: ignore[method-assign]
    results = []

    async def main() -> None:
        async def one() -> None:
            results.append(await flows.load(Requested("source", PLAIN), None))

        async with trio.open_nursery() as nursery:
            for _ in range(20):
                nursery.start_soon(one)

    trio.run(main)
    assert loads == 1 and len(results) == 20
    assert all(flow is results[0] for flow in results)


def test_identical_non_deterministic_sources_are_each_evaluated(registry) -> None:
    text = 'local flow = Flow.new(uuid4())\nflow:step("a", nodes.log({}))\nreturn flow\n'
    flows = loader(registry)
    names = set()

    async def main() -> None:
        async def one() -> None:
            names.add((await flows.load(Requested("source", text), None)).name)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(one)

    trio.run(main)
    assert len(names) == 5
