"""Node-level tests for cache_set / cache_get (CA-*, semantics.md#acceptance 09-cache)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ironflow_core.configs import structure_config
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.nodes import cache
from ironflow_core.testing import make_registry, node_context

REGISTRY = make_registry()


class FakeClock:
    """Stands in for ``cache.now_seconds`` so TTLs can be crossed without sleeping."""

    def __init__(self, now: int = 1_700_000_000) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClock]:
    fake = FakeClock()
    monkeypatch.setattr(cache, "now_seconds", fake)
    cache.MEMORY_CACHE.clear()  # a CLI run starts with an empty process-wide store
    yield fake
    cache.MEMORY_CACHE.clear()


def make_ctx(data: dict[str, Any], env: dict[str, str], run_id: str) -> NodeContext:
    return node_context(data, registry=REGISTRY, env=env, node_type="cache", run_id=run_id)


async def run_node(
    node_type: str,
    raw: dict[str, Any],
    data: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    run_id: str = "r1",
) -> dict[str, Any]:
    spec = REGISTRY.nodes[node_type]
    config = structure_config(spec.config, {**raw, "_step_name": "s"})
    return dict(await spec.run(make_ctx(data or {}, env or {}, run_id), config))


async def fails(node_type: str, raw: dict[str, Any], data: dict[str, Any] | None = None) -> str:
    with pytest.raises(NodeError) as info:
        await run_node(node_type, raw, data)
    return str(info.value)


def test_appendix_b_summaries() -> None:
    assert REGISTRY.nodes["cache_set"].summary == (
        "Store a value in the cache (memory or file-based) with optional TTL"
    )
    assert REGISTRY.nodes["cache_get"].summary == (
        "Retrieve a value from the cache (memory or file-based)"
    )


# -- memory backend --------------------------------------------------------------------


async def test_ca_4_memory_set_then_get() -> None:
    out = await run_node("cache_set", {"key": "k", "value": 42, "backend": "memory"})
    assert out == {"cache_key": "k", "cache_stored": True, "cache_size": 1}
    assert await run_node("cache_get", {"key": "k"}) == {"cached_value": 42, "cache_hit": True}


async def test_ca_4_interpolated_keys_and_custom_output_key() -> None:
    data = {"user_id": "abc123"}
    out = await run_node("cache_set", {"key": "user:${ctx.user_id}", "value": {"s": 1}}, data)
    assert out["cache_key"] == "user:abc123"
    out = await run_node("cache_get", {"key": "user:${ctx.user_id}", "output_key": "hit"}, data)
    assert out == {"hit": {"s": 1}, "cache_hit": True}


async def test_ca_4_miss_is_null_and_false() -> None:
    out = await run_node("cache_get", {"key": "nonexistent", "output_key": "missing_value"})
    assert out == {"missing_value": None, "cache_hit": False}


async def test_ca_1_source_key_wins_over_value_and_values_are_literal() -> None:
    await run_node(
        "cache_set", {"key": "k", "source_key": "user", "value": "ignored"}, {"user": [1, 2]}
    )
    assert (await run_node("cache_get", {"key": "k"}))["cached_value"] == [1, 2]
    # `value` is not interpolated; an explicit json_null is a value too.
    await run_node("cache_set", {"key": "lit", "value": "${ctx.user}"}, {"user": "x"})
    assert (await run_node("cache_get", {"key": "lit"}))["cached_value"] == "${ctx.user}"
    await run_node("cache_set", {"key": "nul", "value": None})
    assert await run_node("cache_get", {"key": "nul"}) == {"cached_value": None, "cache_hit": True}


async def test_ca_1_errors() -> None:
    assert await fails("cache_set", {"value": 1}) == "cache_set requires 'key'"
    assert await fails("cache_get", {}) == "cache_get requires 'key'"
    assert await fails("cache_set", {"key": "k"}) == "cache_set requires 'source_key' or 'value'"
    assert await fails("cache_set", {"key": "k", "source_key": "gone"}) == (
        "Key 'gone' not found in context"
    )


async def test_ca_backend_must_be_memory_or_file() -> None:
    assert await fails("cache_set", {"key": "k", "value": 1, "backend": "redis"}) == (
        "cache_set: unsupported backend 'redis'. Must be 'memory' or 'file'."
    )
    assert await fails("cache_get", {"key": "k", "backend": "Memory"}) == (
        "cache_get: unsupported backend 'Memory'. Must be 'memory' or 'file'."
    )


async def test_ca_ttl_is_a_strict_u64() -> None:
    expected = "'ttl' must be a non-negative whole number in u64 range"
    assert await fails("cache_set", {"key": "k", "value": 1, "ttl": -1}) == expected
    assert await fails("cache_set", {"key": "k", "value": 1, "ttl": "soon"}) == expected
    assert await fails("cache_set", {"key": "k", "value": 1, "ttl": 1.5}) == expected
    out = await run_node("cache_set", {"key": "k", "value": 1, "ttl": "${ctx.t}"}, {"t": 60})
    assert out["cache_stored"] is True


async def test_ca_2_ttl_zero_is_expired_at_once() -> None:
    await run_node("cache_set", {"key": "eph", "value": "x", "ttl": 0})
    assert await run_node("cache_get", {"key": "eph"}) == {"cached_value": None, "cache_hit": False}


async def test_ca_2_entry_expires_when_now_reaches_set_time_plus_ttl(clock: FakeClock) -> None:
    await run_node("cache_set", {"key": "tok", "value": "v", "ttl": 10})
    clock.now += 9
    assert (await run_node("cache_get", {"key": "tok"}))["cache_hit"] is True
    clock.now += 1
    assert (await run_node("cache_get", {"key": "tok"}))["cache_hit"] is False
    assert len(cache.MEMORY_CACHE) == 0  # the expired entry was reclaimed by the read


async def test_ca_2_insert_drops_expired_entries_first(clock: FakeClock) -> None:
    await run_node("cache_set", {"key": "a", "value": 1, "ttl": 5})
    await run_node("cache_set", {"key": "b", "value": 2, "ttl": 50})
    clock.now += 5
    out = await run_node("cache_set", {"key": "c", "value": 3})
    assert out["cache_size"] == 2


async def test_ca_2_lru_eviction_at_capacity() -> None:
    env = {"IRONFLOW_CACHE_MAX_ENTRIES": "2"}
    await run_node("cache_set", {"key": "a", "value": 1}, env=env)
    await run_node("cache_set", {"key": "b", "value": 2}, env=env)
    await run_node("cache_get", {"key": "a"})  # a is now the most recently used
    out = await run_node("cache_set", {"key": "c", "value": 3}, env=env)
    assert out["cache_size"] == 2
    assert (await run_node("cache_get", {"key": "b"}))["cache_hit"] is False
    assert (await run_node("cache_get", {"key": "a"}))["cached_value"] == 1
    assert (await run_node("cache_get", {"key": "c"}))["cached_value"] == 3
    # Overwriting an existing key never evicts.
    out = await run_node("cache_set", {"key": "c", "value": 4}, env=env)
    assert out["cache_size"] == 2


async def test_ca_2_capacity_default_and_invalid_env(clock: FakeClock) -> None:
    local = cache.MemoryCache(clock=clock)
    for index in range(3):
        local.set(f"k{index}", index, None, 3)
    assert local.set("k3", 3, None, 3) == 3
    assert local.get("k0") == (False, None)
    env = {"IRONFLOW_CACHE_MAX_ENTRIES": "zero"}  # invalid: the default 10 000 applies
    for index in range(5):
        out = await run_node("cache_set", {"key": f"x{index}", "value": index}, env=env)
    assert out["cache_size"] == 5


async def test_ca_2_memory_store_is_shared_by_every_run_in_the_process() -> None:
    await run_node("cache_set", {"key": "shared", "value": "from run 1"}, run_id="run-1")
    out = await run_node("cache_get", {"key": "shared"}, run_id="run-2")
    assert out == {"cached_value": "from run 1", "cache_hit": True}


# -- file backend ----------------------------------------------------------------------


async def test_ca_3_file_backend_set_get_and_layout(tmp_path: Path, clock: FakeClock) -> None:
    out = await run_node(
        "cache_set",
        {"key": "app_config", "value": {"version": "1.1.0", "debug": False, "max_retries": 3},
         "backend": "file", "cache_dir": str(tmp_path), "ttl": 86400},
    )  # fmt: skip
    assert out == {"cache_key": "app_config", "cache_stored": True}  # no cache_size for files
    path = tmp_path / "app_config.json"
    assert path.read_text() == (
        '{"value":{"debug":false,"max_retries":3,"version":"1.1.0"},'
        f'"expires_at":{clock.now + 86400}}}'
    )
    out = await run_node(
        "cache_get",
        {
            "key": "app_config",
            "output_key": "config",
            "backend": "file",
            "cache_dir": str(tmp_path),
        },
    )
    assert out == {
        "config": {"debug": False, "max_retries": 3, "version": "1.1.0"},
        "cache_hit": True,
    }


async def test_ca_3_no_ttl_omits_expires_at_and_dir_is_created(tmp_path: Path) -> None:
    cache_dir = tmp_path / "nested" / "cache"
    await run_node(
        "cache_set",
        {"key": "k", "value": [1, 2, 3], "backend": "file", "cache_dir": str(cache_dir)},
    )
    assert json.loads((cache_dir / "k.json").read_text()) == {"value": [1, 2, 3]}


async def test_ca_3_safe_key_quirk_lets_distinct_keys_share_a_file(tmp_path: Path) -> None:
    base = {"backend": "file", "cache_dir": str(tmp_path)}
    await run_node("cache_set", {**base, "key": "llm:${ctx.h}", "value": "one"}, {"h": "demo-hash"})
    assert (tmp_path / "llm_demo-hash.json").exists()
    out = await run_node("cache_get", {**base, "key": "llm/demo-hash"})
    assert out == {"cached_value": "one", "cache_hit": True}
    assert cache.safe_key("ünï_cødé-1 ../x") == "ünï_cødé-1____x"


async def test_ca_3_env_default_directory(tmp_path: Path) -> None:
    env = {"IRONFLOW_CACHE_DIR": str(tmp_path / "from-env")}
    await run_node("cache_set", {"key": "e", "value": {"from": "env"}, "backend": "file"}, env=env)
    assert (tmp_path / "from-env" / "e.json").exists()
    out = await run_node("cache_get", {"key": "e", "backend": "file"}, env=env)
    assert out == {"cached_value": {"from": "env"}, "cache_hit": True}


async def test_ca_3_built_in_default_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    await run_node("cache_set", {"key": "d", "value": 1, "backend": "file"})
    assert (tmp_path / ".ironflow_cache" / "d.json").exists()


async def test_ca_3_expired_file_is_deleted_and_misses(tmp_path: Path, clock: FakeClock) -> None:
    base = {"key": "t", "backend": "file", "cache_dir": str(tmp_path)}
    await run_node("cache_set", {**base, "value": "v", "ttl": 30})
    clock.now += 30
    assert await run_node("cache_get", base) == {"cached_value": None, "cache_hit": False}
    assert not (tmp_path / "t.json").exists()


async def test_ca_3_file_miss(tmp_path: Path) -> None:
    out = await run_node(
        "cache_get", {"key": "none", "backend": "file", "cache_dir": str(tmp_path)}
    )
    assert out == {"cached_value": None, "cache_hit": False}


async def test_ca_3_corrupt_files_are_errors(tmp_path: Path) -> None:
    base = {"key": "bad", "backend": "file", "cache_dir": str(tmp_path)}
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    assert (await fails("cache_get", base)).startswith(f"Corrupt cache file '{path}': ")
    path.write_text('{"expires_at": 5}')
    assert (await fails("cache_get", base)).startswith(f"Corrupt cache file '{path}': ")
    path.write_text('{"value": 1, "expires_at": "soon"}')
    assert (await fails("cache_get", base)).startswith(f"Corrupt cache file '{path}': ")
    path.unlink()
    path.mkdir()
    assert (await fails("cache_get", base)).startswith(f"Failed to read cache file '{path}': ")


async def test_ca_ttl_overflow_is_rejected_for_files(tmp_path: Path) -> None:
    message = await fails(
        "cache_set",
        {"key": "o", "value": "v", "backend": "file", "cache_dir": str(tmp_path),
         "ttl": "18446744073709551615"},
    )  # fmt: skip
    assert message == "cache_set: 'ttl' produces an expiry timestamp overflow"
    assert not (tmp_path / "o.json").exists()


# -- the 09-cache examples, step by step (semantics.md#acceptance) ----------------------------------------


async def test_09_cache_memory_example() -> None:
    ctx: dict[str, Any] = {}
    ctx |= await run_node(
        "cache_set", {"key": "auth_token", "value": "sk-abc123-secret", "ttl": 3600}
    )
    ctx |= {"user": {"id": 42, "name": "Alice", "role": "admin"}}
    ctx |= await run_node("cache_set", {"key": "current_user", "source_key": "user"}, ctx)
    ctx |= await run_node("cache_get", {"key": "auth_token", "output_key": "cached_token"}, ctx)
    ctx |= await run_node("cache_get", {"key": "current_user", "output_key": "cached_user"}, ctx)
    ctx |= await run_node("cache_get", {"key": "nonexistent", "output_key": "missing_value"}, ctx)
    assert ctx["cached_token"] == "sk-abc123-secret"
    assert ctx["cached_user"] == {"id": 42, "name": "Alice", "role": "admin"}
    assert ctx["missing_value"] is None
    assert ctx["cache_hit"] is False
    assert ctx["cache_key"] == "current_user"
    assert ctx["cache_size"] == 2


async def test_09_cache_context_keys_example(tmp_path: Path) -> None:
    cache_dir = str(tmp_path / "ironflow-cache-context")
    ctx: dict[str, Any] = {
        "user_id": "u-1001",
        "prompt_hash": "demo-hash",
        "user_token": "token-for-u-1001",
        "llm_response": {"model": "demo", "text": "cached response"},
    }
    ctx |= await run_node(
        "cache_set",
        {"key": "user:${ctx.user_id}:token", "source_key": "user_token", "ttl": 3600},
        ctx,
    )
    ctx |= await run_node(
        "cache_set",
        {"key": "llm:${ctx.prompt_hash}", "source_key": "llm_response", "ttl": 86400,
         "backend": "file", "cache_dir": cache_dir},
        ctx,
    )  # fmt: skip
    ctx |= await run_node(
        "cache_get", {"key": "user:${ctx.user_id}:token", "output_key": "cached_token"}, ctx
    )
    ctx |= await run_node(
        "cache_get",
        {"key": "llm:${ctx.prompt_hash}", "output_key": "cached_llm_response", "backend": "file",
         "cache_dir": cache_dir},
        ctx,
    )  # fmt: skip
    assert ctx["cached_token"] == "token-for-u-1001"
    assert ctx["cached_llm_response"] == {"model": "demo", "text": "cached response"}
    assert ctx["cache_hit"] is True
    assert ctx["cache_key"] == "llm:demo-hash"
    assert (tmp_path / "ironflow-cache-context" / "llm_demo-hash.json").exists()


# -- IRONFLOW_FS_ROOTS (beyond upstream) -----------------------------------------------


def outside_roots(node: str, path: Path | str) -> str:
    return f"{node}: '{path}' is outside the directories allowed by IRONFLOW_FS_ROOTS"


async def test_file_cache_inside_the_roots_works(tmp_path: Path) -> None:
    env = {"IRONFLOW_FS_ROOTS": str(tmp_path)}
    base = {"key": "k", "backend": "file", "cache_dir": str(tmp_path / "c" / "d")}
    await run_node("cache_set", {**base, "value": [1]}, env=env)
    assert await run_node("cache_get", base, env=env) == {"cached_value": [1], "cache_hit": True}


async def test_file_cache_refuses_a_cache_dir_outside_the_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "k.json").write_text('{"value": "secret"}')
    env = {"IRONFLOW_FS_ROOTS": str(root)}
    for cache_dir in (str(outside), f"{root}/../outside"):
        base = {"key": "k", "backend": "file", "cache_dir": cache_dir}
        with pytest.raises(NodeError) as info:
            await run_node("cache_get", base, env=env)
        assert str(info.value) == outside_roots("cache_get", cache_dir)
        with pytest.raises(NodeError) as info:
            await run_node("cache_set", {**base, "value": "planted"}, env=env)
        assert str(info.value) == outside_roots("cache_set", cache_dir)
    assert (outside / "k.json").read_text() == '{"value": "secret"}'
    assert sorted(p.name for p in outside.iterdir()) == ["k.json"]


async def test_file_cache_follows_no_symlink_out_of_the_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "k.json").write_text('{"value": "secret"}')
    (root / "door").symlink_to(outside)  # the cache dir itself leads out
    (root / "cache").mkdir()
    (root / "cache" / "k.json").symlink_to(outside / "k.json")  # the entry leads out
    env = {"IRONFLOW_FS_ROOTS": str(root)}
    door = {"key": "k", "backend": "file", "cache_dir": str(root / "door")}
    with pytest.raises(NodeError) as info:
        await run_node("cache_get", door, env=env)
    assert str(info.value) == outside_roots("cache_get", root / "door")
    with pytest.raises(NodeError) as info:
        await run_node("cache_set", {**door, "value": "planted"}, env=env)
    assert str(info.value) == outside_roots("cache_set", root / "door")
    entry = {"key": "k", "backend": "file", "cache_dir": str(root / "cache")}
    with pytest.raises(NodeError, match=r"Failed to read cache file .*Too many levels"):
        await run_node("cache_get", entry, env=env)
    with pytest.raises(NodeError, match=r"Failed to write cache file .*Too many levels"):
        await run_node("cache_set", {**entry, "value": "planted"}, env=env)
    assert (outside / "k.json").read_text() == '{"value": "secret"}'


async def test_base64_file_io_obeys_the_roots(tmp_path: Path) -> None:
    """Siblings of the cache: ``base64_encode.file`` and ``base64_decode.output_file``."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "door").symlink_to(outside)
    (root / "in.txt").write_text("hi")
    env = {"IRONFLOW_FS_ROOTS": str(root)}
    out = await run_node("base64_encode", {"file": str(root / "in.txt")}, env=env)
    assert out == {"base64_encoded": "aGk="}
    for path in (outside / "secret.txt", root / "door" / "secret.txt"):
        with pytest.raises(NodeError) as info:
            await run_node("base64_encode", {"file": str(path)}, env=env)
        assert str(info.value) == outside_roots("base64_encode", path)
        with pytest.raises(NodeError) as info:
            await run_node("base64_decode", {"input": "aGk=", "output_file": str(path)}, env=env)
        assert str(info.value) == outside_roots("base64_decode", path)
    assert (outside / "secret.txt").read_text() == "secret"
    await run_node("base64_decode", {"input": "aGk=", "output_file": str(root / "o.txt")}, env=env)
    assert (root / "o.txt").read_text() == "hi"
