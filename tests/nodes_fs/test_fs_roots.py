"""Operator policy IRONFLOW_FS_ROOTS (beyond upstream; unset = no confinement)."""

from __future__ import annotations

import os
import zipfile

import pytest

from ironflow_core.errors import NodeError


@pytest.fixture
def layout(tmp_path):
    """``root/`` (allowed) and ``outside/`` (not), with a file in each."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "in.txt").write_text("inside")
    (outside / "secret.txt").write_text("secret")
    return root, outside


@pytest.fixture
def confined(make_ctx, layout):
    root, _ = layout
    return make_ctx(env={"IRONFLOW_FS_ROOTS": f"/nonexistent-root{os.pathsep}{root}"})


def refused(node: str, path) -> str:
    return f"{node}: '{path}' is outside the directories allowed by IRONFLOW_FS_ROOTS"


async def test_unset_policy_does_not_confine(call, layout):
    _, outside = layout
    out = await call("read_file", {"path": str(outside / "secret.txt")})
    assert out["file_content"] == "secret"


async def test_paths_inside_a_root_work(call, confined, layout):
    root, _ = layout
    read = await call("read_file", {"path": str(root / "in.txt")}, confined)
    assert read["file_content"] == "inside"
    await call("write_file", {"path": str(root / "new" / "w.txt"), "content": "w"}, confined)
    await call(
        "copy_file", {"source": str(root / "in.txt"), "destination": str(root / "c.txt")}, confined
    )
    await call(
        "move_file", {"source": str(root / "c.txt"), "destination": str(root / "m.txt")}, confined
    )
    await call("delete_file", {"path": str(root / "m.txt")}, confined)
    listed = await call("list_directory", {"path": str(root), "recursive": True}, confined)
    assert [e["name"] for e in listed["files"]] == ["in.txt", "new", "w.txt"]
    await call(
        "zip_create", {"source": str(root / "new"), "zip_path": str(root / "n.zip")}, confined
    )
    await call("zip_list", {"path": str(root / "n.zip")}, confined)
    await call(
        "zip_extract", {"path": str(root / "n.zip"), "destination": str(root / "x")}, confined
    )
    assert (root / "x" / "w.txt").read_text() == "w"


async def test_every_node_refuses_paths_outside(call, confined, layout):
    root, outside = layout
    secret = outside / "secret.txt"
    with zipfile.ZipFile(outside / "o.zip", "w") as archive:
        archive.writestr("a.txt", "a")
    cases = [
        ("read_file", {"path": str(secret)}, secret),
        ("write_file", {"path": str(outside / "w.txt"), "content": "x"}, outside / "w.txt"),
        ("copy_file", {"source": str(secret), "destination": str(root / "c")}, secret),
        (
            "copy_file",
            {"source": str(root / "in.txt"), "destination": str(outside / "c")},
            outside / "c",
        ),
        ("move_file", {"source": str(secret), "destination": str(root / "m")}, secret),
        (
            "move_file",
            {"source": str(root / "in.txt"), "destination": str(outside / "m")},
            outside / "m",
        ),
        ("delete_file", {"path": str(secret)}, secret),
        ("list_directory", {"path": str(outside)}, outside),
        ("zip_create", {"source": str(outside), "zip_path": str(root / "o.zip")}, outside),
        (
            "zip_create",
            {"source": str(root / "in.txt"), "zip_path": str(outside / "z.zip")},
            outside / "z.zip",
        ),
        ("zip_list", {"path": str(outside / "o.zip")}, outside / "o.zip"),
        (
            "zip_extract",
            {"path": str(outside / "o.zip"), "destination": str(root / "x")},
            outside / "o.zip",
        ),
    ]
    for node, config, shown in cases:
        with pytest.raises(NodeError) as info:
            await call(node, config, confined)
        assert str(info.value) == refused(node, shown), node
    assert secret.read_text() == "secret"
    assert sorted(os.listdir(outside)) == ["o.zip", "secret.txt"]
    assert sorted(os.listdir(root)) == ["in.txt"]


async def test_dot_dot_cannot_climb_out(call, confined, layout):
    root, _ = layout
    sneaky = f"{root}/../outside/secret.txt"
    with pytest.raises(NodeError) as info:
        await call("read_file", {"path": sneaky}, confined)
    assert str(info.value) == refused("read_file", sneaky)


async def test_a_symlink_inside_the_root_cannot_lead_outside(call, confined, layout):
    root, outside = layout
    (root / "door").symlink_to(outside)  # a directory symlink: followed by the OS
    through = root / "door" / "secret.txt"
    with pytest.raises(NodeError) as info:
        await call("read_file", {"path": str(through)}, confined)
    assert str(info.value) == refused("read_file", through)
    with pytest.raises(NodeError) as info:
        await call(
            "write_file", {"path": str(root / "door" / "planted.txt"), "content": "x"}, confined
        )
    assert str(info.value) == refused("write_file", root / "door" / "planted.txt")
    with pytest.raises(NodeError) as info:
        await call("list_directory", {"path": str(root / "door")}, confined)
    assert str(info.value) == refused("list_directory", root / "door")
    (root / "alias.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(NodeError) as info:
        await call(
            "copy_file",
            {"source": str(root / "alias.txt"), "destination": str(root / "c")},
            confined,
        )
    assert str(info.value) == refused("copy_file", root / "alias.txt")
    assert not (outside / "planted.txt").exists()
    assert not (root / "c").exists()


async def test_deleting_a_symlink_inside_the_root_touches_only_the_link(call, confined, layout):
    root, outside = layout
    (root / "alias.txt").symlink_to(outside / "secret.txt")
    await call("delete_file", {"path": str(root / "alias.txt")}, confined)
    assert not (root / "alias.txt").is_symlink()
    assert (outside / "secret.txt").read_text() == "secret"


async def test_relative_paths_are_resolved_from_the_working_directory(
    call, make_ctx, layout, monkeypatch
):
    root, _ = layout
    monkeypatch.chdir(root)
    ctx = make_ctx(env={"IRONFLOW_FS_ROOTS": "."})
    assert (await call("read_file", {"path": "in.txt"}, ctx))["file_content"] == "inside"
    with pytest.raises(NodeError, match="IRONFLOW_FS_ROOTS"):
        await call("read_file", {"path": "../outside/secret.txt"}, ctx)


async def test_set_but_empty_policy_allows_nothing(call, make_ctx, layout):
    root, _ = layout
    ctx = make_ctx(env={"IRONFLOW_FS_ROOTS": ""})
    with pytest.raises(NodeError, match="IRONFLOW_FS_ROOTS"):
        await call("read_file", {"path": str(root / "in.txt")}, ctx)


async def test_symlinks_that_stay_inside_the_roots_still_work(call, confined, layout):
    root, _ = layout
    (root / "real").mkdir()
    (root / "real" / "f.txt").write_text("via link")
    (root / "rel").symlink_to("real")  # relative directory link
    (root / "abs").symlink_to(root / "real")  # absolute directory link
    (root / "leaf.txt").symlink_to(root / "real" / "f.txt")
    for path in (root / "rel" / "f.txt", root / "abs" / "f.txt"):
        assert (await call("read_file", {"path": str(path)}, confined))["file_content"] == (
            "via link"
        )
    await call("write_file", {"path": str(root / "rel" / "w.txt"), "content": "w"}, confined)
    assert (root / "real" / "w.txt").read_text() == "w"
    await call(
        "copy_file", {"source": str(root / "leaf.txt"), "destination": str(root / "c.txt")},
        confined,
    )
    assert (root / "c.txt").read_text() == "via link"


async def test_a_symlink_loop_is_an_os_error_not_a_hang(call, confined, layout):
    root, _ = layout
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(NodeError) as info:
        await call("read_file", {"path": str(root / "a" / "x")}, confined)
    assert "Too many levels of symbolic links (os error 40)" in str(info.value)
    assert "[Errno" not in str(info.value)


@pytest.mark.parametrize("node, config, cap, message", [
    ("list_directory", {"max_entries": 100_000}, ("DIRECTORY_ENTRIES", "2"),
     "entry count exceeds limit 2"),
    ("list_directory", {"max_depth": 99, "recursive": True}, ("DIRECTORY_DEPTH", "1"),
     "depth 2 exceeds limit 1"),
    ("zip_list", {"max_entries": 100_000}, ("ZIP_ENTRIES", "2"), "exceeds limit 2"),
    ("zip_extract", {"max_entries": 100_000}, ("ZIP_ENTRIES", "2"), "exceeds limit 2"),
    ("zip_extract", {"max_total_uncompressed_bytes": 10**12},
     ("ZIP_UNCOMPRESSED_BYTES", "4"), "limit 4"),
    ("zip_create", {"max_entries": 100_000}, ("ZIP_ENTRIES", "2"), "exceeds limit 2"),
], ids=["list-entries", "list-depth", "zip_list-entries", "extract-entries", "extract-bytes",
        "create-entries"])
async def test_node_parameters_cannot_raise_the_operators_caps(
    call, make_ctx, tmp_path, node, config, cap, message
):
    tree = tmp_path / "tree"
    (tree / "sub" / "deeper").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (tree / name).write_text("12345")
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as archive:
        for name in ("a", "b", "c"):
            archive.writestr(name, "12345")
    ctx = make_ctx(env={f"IRONFLOW_MAX_{cap[0]}": cap[1]})
    paths = {
        "list_directory": {"path": str(tree)},
        "zip_list": {"path": str(tmp_path / "z.zip")},
        "zip_extract": {"path": str(tmp_path / "z.zip"), "destination": str(tmp_path / "x")},
        "zip_create": {"source": str(tree), "zip_path": str(tmp_path / "o.zip")},
    }
    with pytest.raises(NodeError, match=message):
        await call(node, {**paths[node], **config}, ctx)


async def test_node_parameters_may_lower_the_operators_caps(call, make_ctx, tmp_path):
    for name in ("a", "b", "c"):
        (tmp_path / name).write_text("x")
    with pytest.raises(NodeError, match="entry count exceeds limit 1"):
        await call("list_directory", {"path": str(tmp_path), "max_entries": 1}, make_ctx())


async def test_a_root_itself_can_be_listed_and_archived(call, confined, layout, tmp_path):
    root, _ = layout
    listed = await call("list_directory", {"path": str(root)}, confined)
    assert [e["name"] for e in listed["files"]] == ["in.txt"]
    out = await call(
        "zip_create", {"source": str(root), "zip_path": str(root / "all.zip")}, confined
    )
    assert out["zip_create_files"] == 1
