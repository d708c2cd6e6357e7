"""zip_create, zip_list, zip_extract (ZC-*, ZL-*, ZX-*)."""

from __future__ import annotations

import os
import stat
import struct
import zipfile

import pytest
import trio

from ironflow_core.errors import NodeError


def make_zip(path, entries, compression=zipfile.ZIP_DEFLATED) -> None:
    """``entries``: (name, bytes) pairs or (ZipInfo, bytes) pairs, written as given."""
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries:
            archive.writestr(name, data)


def names_in(path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        return archive.namelist()


def source_tree(root) -> None:
    root.mkdir()
    (root / "b.txt").write_text("bb")
    (root / "a.txt").write_text("a")
    (root / "z").mkdir()
    (root / "z" / "deep.txt").write_text("deep")
    (root / "m").mkdir()
    (root / "m" / "mid.txt").write_text("mid")
    (root / "m" / "x").mkdir()
    (root / "m" / "x" / "inner.txt").write_text("inner")
    (root / "empty").mkdir()


# --- zip_create ----------------------------------------------------------------


async def test_zc_1_zc_3_directory_archive_order_and_names(call, tmp_path):
    source_tree(tmp_path / "src")
    out = await call(
        "zip_create", {"source": str(tmp_path / "src"), "zip_path": str(tmp_path / "out.zip")}
    )
    assert out == {
        "zip_create_path": str(tmp_path / "out.zip"),
        "zip_create_source": str(tmp_path / "src"),
        "zip_create_files": 5,
        "zip_create_success": True,
    }
    # files of a directory first, then its subdirectories in name order; no dir entries
    assert names_in(tmp_path / "out.zip") == [
        "a.txt",
        "b.txt",
        "m/mid.txt",
        "m/x/inner.txt",
        "z/deep.txt",
    ]
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert archive.read("m/x/inner.txt") == b"inner"
        info = archive.getinfo("a.txt")
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.external_attr >> 16 == stat.S_IFREG | 0o600  # ZC-5


async def test_zc_1_include_root_and_stored_compression(call, tmp_path):
    source_tree(tmp_path / "src")
    await call(
        "zip_create",
        {
            "source": str(tmp_path / "src"),
            "zip_path": str(tmp_path / "out.zip"),
            "include_root": "true",
            "compression": "stored",
        },
    )
    names = names_in(tmp_path / "out.zip")
    assert names[0] == "src/a.txt"
    assert all(name.startswith("src/") for name in names)
    with zipfile.ZipFile(tmp_path / "out.zip") as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_STORED}


async def test_zc_1_single_file_source(call, tmp_path):
    (tmp_path / "one.txt").write_text("one")
    out = await call(
        "zip_create",
        {"source": str(tmp_path / "one.txt"), "zip_path": str(tmp_path / "new" / "o.zip")},
    )
    assert out["zip_create_files"] == 1
    assert names_in(tmp_path / "new" / "o.zip") == ["one.txt"]  # ZC-5: parent created


async def test_zc_unsupported_compression(call, tmp_path):
    (tmp_path / "f").write_text("f")
    with pytest.raises(NodeError) as info:
        await call(
            "zip_create",
            {
                "source": str(tmp_path / "f"),
                "zip_path": str(tmp_path / "o.zip"),
                "compression": "lzma",
            },
        )
    assert (
        str(info.value) == "zip_create: unsupported compression 'lzma'. Use 'stored' or 'deflated'."
    )


@pytest.mark.parametrize(
    ("node", "config", "message"),
    [
        ("zip_create", {"zip_path": "o.zip"}, "zip_create requires 'source' parameter"),
        ("zip_create", {"source": "s"}, "zip_create requires 'zip_path' parameter"),
        ("zip_list", {}, "zip_list requires 'path' parameter"),
        ("zip_extract", {"destination": "d"}, "zip_extract requires 'path' parameter"),
        ("zip_extract", {"path": "p"}, "zip_extract requires 'destination' parameter"),
    ],
)
async def test_zip_missing_parameters(call, node, config, message):
    with pytest.raises(NodeError) as info:
        await call(node, config)
    assert str(info.value) == message


async def test_zc_missing_source(call, tmp_path):
    with pytest.raises(NodeError, match=r"failed to inspect .*No such file or directory"):
        await call(
            "zip_create", {"source": str(tmp_path / "nope"), "zip_path": str(tmp_path / "o.zip")}
        )
    assert os.listdir(tmp_path) == []


async def test_zc_4_empty_directories_count_toward_max_entries(call, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("one", "two"):
        (src / name).mkdir()
    ok = await call(
        "zip_create", {"source": str(src), "zip_path": str(tmp_path / "ok.zip"), "max_entries": 2}
    )
    assert ok["zip_create_files"] == 0
    assert names_in(tmp_path / "ok.zip") == []
    with pytest.raises(NodeError, match="source entry count exceeds limit 1"):
        await call(
            "zip_create",
            {"source": str(src), "zip_path": str(tmp_path / "no.zip"), "max_entries": 1},
        )
    assert not (tmp_path / "no.zip").exists()


async def test_zc_4_max_depth_at_the_directory_boundary(call, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "root.txt").write_text("r")
    shallow = await call(
        "zip_create", {"source": str(src), "zip_path": str(tmp_path / "s.zip"), "max_depth": 0}
    )
    assert shallow["zip_create_files"] == 1
    (src / "child").mkdir()
    (src / "child" / "nested.txt").write_text("n")
    with pytest.raises(NodeError, match=r"has depth 1, exceeds limit 0"):
        await call(
            "zip_create", {"source": str(src), "zip_path": str(tmp_path / "r.zip"), "max_depth": 0}
        )
    assert not (tmp_path / "r.zip").exists()
    accepted = await call(
        "zip_create",
        {"source": str(src / "child"), "zip_path": str(tmp_path / "a.zip"), "max_depth": 0},
    )
    assert accepted["zip_create_files"] == 1


async def test_zc_4_total_uncompressed_bytes(call, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(b"x" * 600)
    (src / "b").write_bytes(b"y" * 600)
    with pytest.raises(NodeError) as info:
        await call(
            "zip_create",
            {
                "source": str(src),
                "zip_path": str(tmp_path / "o.zip"),
                "max_total_uncompressed_bytes": 1000,
            },
        )
    assert str(info.value) == "zip_create: total source bytes exceed uncompressed limit 1000"
    assert not (tmp_path / "o.zip").exists()


@pytest.mark.parametrize("where", ["root", "nested", "cycle"])
async def test_zc_2_source_symlinks_are_refused(call, tmp_path, where):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("ok")
    if where == "root":
        source = tmp_path / "link"
        source.symlink_to(src)
    elif where == "nested":
        source = src
        (src / "escape").symlink_to(outside)
    else:
        source = src
        (src / "loop").symlink_to(src)
    with trio.fail_after(5), pytest.raises(NodeError, match="symlinks are not followed"):
        await call("zip_create", {"source": str(source), "zip_path": str(tmp_path / "o.zip")})
    assert not (tmp_path / "o.zip").exists()


async def test_zc_2_special_files_are_refused(call, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    os.mkfifo(src / "pipe")
    with trio.fail_after(5), pytest.raises(NodeError, match="is not a regular file or directory"):
        await call("zip_create", {"source": str(src), "zip_path": str(tmp_path / "o.zip")})


async def test_zc_2_names_with_backslashes_are_refused(call, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "a\\b.txt").write_text("x")
    with pytest.raises(NodeError, match="non-portable file name"):
        await call("zip_create", {"source": str(src), "zip_path": str(tmp_path / "o.zip")})


async def test_zc_5_output_symlink_is_refused_without_touching_target(call, tmp_path):
    (tmp_path / "f").write_text("f")
    target = tmp_path / "target"
    target.write_bytes(b"outside sentinel")
    (tmp_path / "o.zip").symlink_to(target)
    with pytest.raises(NodeError, match="symlink"):
        await call(
            "zip_create", {"source": str(tmp_path / "f"), "zip_path": str(tmp_path / "o.zip")}
        )
    assert target.read_bytes() == b"outside sentinel"
    assert sorted(os.listdir(tmp_path)) == ["f", "o.zip", "target"]


# --- zip_list ------------------------------------------------------------------


async def test_zl_2_listing_fields(call, tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("dir/", b"")
        zf.writestr("dir/input.txt", b"hello", compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("raw.bin", b"\x00" * 10, compress_type=zipfile.ZIP_STORED)
    out = await call("zip_list", {"path": str(archive), "output_key": "entries"})
    with zipfile.ZipFile(archive) as zf:
        deflated = zf.getinfo("dir/input.txt")
    assert out == {
        "entries": [
            {
                "name": "dir/",
                "is_directory": True,
                "size": 0,
                "compressed_size": 0,
                "crc32": 0,
                "method": "Stored",
            },
            {
                "name": "dir/input.txt",
                "is_directory": False,
                "size": 5,
                "compressed_size": deflated.compress_size,
                "crc32": deflated.CRC,
                "method": "Deflated",
            },
            {
                "name": "raw.bin",
                "is_directory": False,
                "size": 10,
                "compressed_size": 10,
                "crc32": zipfile.crc32(b"\x00" * 10),
                "method": "Stored",
            },
        ],
        "entries_count": 3,
        "zip_list_path": str(archive),
        "zip_list_success": True,
    }


async def test_zl_1_missing_and_invalid_archives(call, tmp_path):
    with pytest.raises(NodeError, match="failed to open file: No such file"):
        await call("zip_list", {"path": str(tmp_path / "missing.zip")})
    (tmp_path / "bad.zip").write_text("not a zip at all")
    with pytest.raises(NodeError) as info:
        await call("zip_list", {"path": str(tmp_path / "bad.zip")})
    assert str(info.value).startswith(
        f"zip_list: '{tmp_path}/bad.zip' is not a valid ZIP archive: "
    )


async def test_zl_2_entry_and_size_limits(call, make_ctx, tmp_path):
    make_zip(tmp_path / "a.zip", [(f"f{i}", b"x" * 100) for i in range(3)])
    with pytest.raises(NodeError) as info:
        await call("zip_list", {"path": str(tmp_path / "a.zip"), "max_entries": 2})
    assert str(info.value) == "zip_list: archive has 3 entries, exceeds limit 2"
    with pytest.raises(NodeError) as info:
        await call(
            "zip_list", {"path": str(tmp_path / "a.zip"), "max_total_uncompressed_bytes": 250}
        )
    assert str(info.value) == "zip_list: total uncompressed bytes exceed limit 250"
    ctx = make_ctx(env={"IRONFLOW_MAX_ZIP_ENTRIES": "2"})
    with pytest.raises(NodeError, match="exceeds limit 2"):
        await call("zip_list", {"path": str(tmp_path / "a.zip")}, ctx)


async def test_zl_1_announced_entry_count_is_checked_before_parsing(call, tmp_path):
    """An end record claiming 65 000 entries is refused without reading the directory."""
    archive = tmp_path / "claims.zip"
    make_zip(archive, [("a", b"a")])
    data = bytearray(archive.read_bytes())
    at = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, at + 8, 65000, 65000)
    archive.write_bytes(bytes(data))
    with pytest.raises(NodeError) as info:
        await call("zip_list", {"path": str(archive)})
    assert str(info.value) == "zip_list: archive has 65000 entries, exceeds limit 10000"


async def test_zl_1_archive_symlink_is_refused(call, tmp_path):
    make_zip(tmp_path / "real.zip", [("a", b"a")])
    (tmp_path / "link.zip").symlink_to(tmp_path / "real.zip")
    for node, extra in (("zip_list", {}), ("zip_extract", {"destination": str(tmp_path / "out")})):
        with pytest.raises(NodeError, match="failed to open file"):
            await call(node, {"path": str(tmp_path / "link.zip"), **extra})
    assert not (tmp_path / "out").exists()


# --- zip_extract ---------------------------------------------------------------


async def test_zx_3_extract_happy_path(call, make_ctx, tmp_path):
    archive = tmp_path / "a.zip"
    make_zip(archive, [("a.txt", b"alpha"), ("nested/", b""), ("nested/b.txt", b"beta")])
    ctx = make_ctx({"dir": str(tmp_path)})
    out = await call(
        "zip_extract", {"path": "${ctx.dir}/a.zip", "destination": "${ctx.dir}/out/x"}, ctx
    )
    assert out == {
        "extracted_files": ["a.txt", "nested/", "nested/b.txt"],
        "extracted_files_count": 3,
        "zip_extract_path": str(archive),
        "zip_extract_destination": f"{tmp_path}/out/x",
        "zip_extract_success": True,
    }
    assert (tmp_path / "out/x/a.txt").read_bytes() == b"alpha"
    assert (tmp_path / "out/x/nested/b.txt").read_bytes() == b"beta"
    assert not [n for n in os.listdir(tmp_path / "out/x") if n.startswith(".ironflow-")]


async def test_zc_zx_round_trip_with_custom_key(call, tmp_path):
    source_tree(tmp_path / "src")
    await call("zip_create", {"source": str(tmp_path / "src"), "zip_path": str(tmp_path / "t.zip")})
    out = await call(
        "zip_extract",
        {
            "path": str(tmp_path / "t.zip"),
            "destination": str(tmp_path / "dst"),
            "output_key": "items",
        },
    )
    assert out["items_count"] == 5
    assert (tmp_path / "dst" / "m" / "x" / "inner.txt").read_text() == "inner"


async def test_zx_2_overwrite_false_refuses_existing_files(call, tmp_path):
    make_zip(tmp_path / "a.zip", [("a.txt", b"new")])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("old")
    with pytest.raises(NodeError, match="already exists and overwrite=false"):
        await call(
            "zip_extract",
            {
                "path": str(tmp_path / "a.zip"),
                "destination": str(tmp_path / "out"),
                "overwrite": "false",
            },
        )
    assert (tmp_path / "out" / "a.txt").read_text() == "old"
    await call(
        "zip_extract", {"path": str(tmp_path / "a.zip"), "destination": str(tmp_path / "out")}
    )
    assert (tmp_path / "out" / "a.txt").read_text() == "new"


UNSAFE_NAMES = [
    ("../evil.txt", "path traversal attempt"),
    ("a/../../evil.txt", "path traversal attempt"),
    ("./a.txt", "path traversal attempt"),
    ("/etc/evil.txt", "absolute path in archive entry"),
    ("a\\..\\evil.txt", "unsupported path separator"),
    ("a//b.txt", "empty path component"),
    ("c:evil.txt", "not a portable path"),
    ("trailing.", "not a portable path"),
    ("trailing ", "not a portable path"),
    ("CON", "reserved path component"),
    ("dir/nul.txt", "reserved path component"),
    ("Lpt9.log", "reserved path component"),
]


@pytest.mark.parametrize(("name", "reason"), UNSAFE_NAMES)
async def test_zx_1_unsafe_names_are_refused_before_writing_anything(call, tmp_path, name, reason):
    make_zip(tmp_path / "a.zip", [("good.txt", b"good"), (name, b"evil")])
    with pytest.raises(NodeError, match=reason):
        await call(
            "zip_extract", {"path": str(tmp_path / "a.zip"), "destination": str(tmp_path / "out")}
        )
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


async def test_zx_1_reserved_lookalikes_are_fine(call, tmp_path):
    make_zip(tmp_path / "a.zip", [("COM10", b"1"), ("console.txt", b"2"), ("LPT0", b"3")])
    out = await call(
        "zip_extract", {"path": str(tmp_path / "a.zip"), "destination": str(tmp_path / "o")}
    )
    assert out["extracted_files_count"] == 3


async def test_zx_1_depth_limit(call, tmp_path):
    make_zip(tmp_path / "a.zip", [("a/b/c.txt", b"c")])
    with pytest.raises(NodeError) as info:
        await call(
            "zip_extract",
            {"path": str(tmp_path / "a.zip"), "destination": str(tmp_path / "o"), "max_depth": 1},
        )
    assert str(info.value) == "zip_extract: entry 'a/b/c.txt' has depth 2, exceeds limit 1"
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("entries", "reason"),
    [
        ([("Readme.txt", b"1"), ("README.TXT", b"2")], "duplicate archive destination"),
        ([("d/", b""), ("D/", b"")], "duplicate archive destination"),
        ([("a", b"file"), ("a/b.txt", b"child")], "also used as a parent directory"),
        ([("a/b.txt", b"child"), ("A", b"file")], "also used as a parent directory"),
    ],
)
async def test_zx_1_colliding_destinations(call, tmp_path, entries, reason):
    make_zip(tmp_path / "a.zip", entries)
    with pytest.raises(NodeError, match=reason):
        await call(
            "zip_extract", {"path": str(tmp_path / "a.zip"), "destination": str(tmp_path / "o")}
        )
    assert not (tmp_path / "o").exists()


async def test_zx_1_symlink_and_special_entries_are_refused(call, tmp_path):
    link = zipfile.ZipInfo("link")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    make_zip(tmp_path / "l.zip", [("ok.txt", b"ok"), (link, b"/etc/passwd")])
    with pytest.raises(NodeError, match="archive symlink entries are not supported: link"):
        await call(
            "zip_extract", {"path": str(tmp_path / "l.zip"), "destination": str(tmp_path / "o")}
        )
    fifo = zipfile.ZipInfo("pipe")
    fifo.create_system = 3
    fifo.external_attr = (stat.S_IFIFO | 0o644) << 16
    make_zip(tmp_path / "f.zip", [(fifo, b"")])
    with pytest.raises(NodeError, match="not a regular file or directory: pipe"):
        await call(
            "zip_extract", {"path": str(tmp_path / "f.zip"), "destination": str(tmp_path / "o")}
        )
    assert not (tmp_path / "o").exists()


async def test_zx_1_encrypted_entries_are_refused_before_writing(call, tmp_path):
    archive = tmp_path / "e.zip"
    make_zip(archive, [("ok.txt", b"ok"), ("secret.txt", b"secret")], zipfile.ZIP_STORED)
    data = bytearray(archive.read_bytes())
    # set the "encrypted" flag of the second entry in its central-directory record
    central = data.find(b"PK\x01\x02", data.find(b"PK\x01\x02") + 4)
    struct.pack_into("<H", data, central + 8, struct.unpack_from("<H", data, central + 8)[0] | 1)
    archive.write_bytes(bytes(data))
    with pytest.raises(NodeError, match="encrypted archive entries are not supported"):
        await call("zip_extract", {"path": str(archive), "destination": str(tmp_path / "o")})
    assert not (tmp_path / "o").exists()


async def test_zx_1_entry_count_limit(call, tmp_path):
    make_zip(tmp_path / "a.zip", [(f"f{i}", b"") for i in range(5)])
    with pytest.raises(NodeError) as info:
        await call(
            "zip_extract",
            {"path": str(tmp_path / "a.zip"), "destination": str(tmp_path / "o"), "max_entries": 4},
        )
    assert str(info.value) == "zip_extract: archive has 5 entries, exceeds limit 4"
    assert not (tmp_path / "o").exists()


async def test_zx_1_zip_bomb_declared_size_is_refused_before_writing(call, make_ctx, tmp_path):
    # 64 MiB of zeros deflates to ~64 KiB
    make_zip(tmp_path / "bomb.zip", [("zeros.bin", b"\0" * (64 << 20))])
    assert (tmp_path / "bomb.zip").stat().st_size < 1 << 20
    ctx = make_ctx(env={"IRONFLOW_MAX_ZIP_UNCOMPRESSED_BYTES": str(1 << 20)})
    with pytest.raises(NodeError) as info:
        await call(
            "zip_extract",
            {"path": str(tmp_path / "bomb.zip"), "destination": str(tmp_path / "o")},
            ctx,
        )
    assert str(info.value) == f"zip_extract: total uncompressed bytes exceed limit {1 << 20}"
    assert not (tmp_path / "o").exists()


async def test_zx_1_zip_bomb_lying_about_its_size_never_writes_past_the_declaration(call, tmp_path):
    """Entries that declare 1 KiB but inflate to 4 MiB: the actual bytes are cut off."""
    archive = tmp_path / "liar.zip"
    make_zip(archive, [("zeros.bin", b"\0" * (4 << 20))])
    data = bytearray(archive.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<L", data, local + 22, 1024)  # uncompressed size, local header
    struct.pack_into("<L", data, central + 24, 1024)  # uncompressed size, central directory
    archive.write_bytes(bytes(data))
    out_dir = tmp_path / "o"
    with pytest.raises(NodeError, match="zip_extract: "):
        await call(
            "zip_extract",
            {
                "path": str(archive),
                "destination": str(out_dir),
                "max_total_uncompressed_bytes": 4096,
            },
        )
    assert not (out_dir / "zeros.bin").exists()
    assert not [n for n in os.listdir(out_dir) if n.startswith(".ironflow-")]


async def test_zx_2_parent_symlink_in_destination_is_not_followed(call, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "escape.txt").write_bytes(b"outside sentinel")
    destination = tmp_path / "destination"
    destination.mkdir()
    (destination / "linked").symlink_to(outside)
    make_zip(tmp_path / "a.zip", [("linked/escape.txt", b"archive payload")])
    with pytest.raises(NodeError, match="not a safe directory"):
        await call(
            "zip_extract", {"path": str(tmp_path / "a.zip"), "destination": str(destination)}
        )
    assert (outside / "escape.txt").read_bytes() == b"outside sentinel"
    assert (destination / "linked").is_symlink()
    assert os.listdir(outside) == ["escape.txt"]


async def test_zx_2_leaf_symlink_in_destination_is_not_followed(call, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"outside sentinel")
    destination = tmp_path / "destination"
    destination.mkdir()
    (destination / "target.txt").symlink_to(outside)
    make_zip(tmp_path / "a.zip", [("target.txt", b"archive payload")])
    with pytest.raises(NodeError, match="destination leaf is a symlink"):
        await call(
            "zip_extract", {"path": str(tmp_path / "a.zip"), "destination": str(destination)}
        )
    assert outside.read_bytes() == b"outside sentinel"
    assert (destination / "target.txt").is_symlink()


async def test_zx_2_fifo_leaf_is_refused_without_blocking(call, tmp_path):
    destination = tmp_path / "destination"
    destination.mkdir()
    os.mkfifo(destination / "payload.pipe")
    make_zip(tmp_path / "a.zip", [("payload.pipe", b"archive payload")])
    with trio.fail_after(5), pytest.raises(NodeError, match="not a regular file"):
        await call(
            "zip_extract", {"path": str(tmp_path / "a.zip"), "destination": str(destination)}
        )
    assert stat.S_ISFIFO(os.lstat(destination / "payload.pipe").st_mode)


async def test_zx_2_destination_root_symlink_is_refused(call, tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "dest").symlink_to(real)
    make_zip(tmp_path / "a.zip", [("a.txt", b"a")])
    with pytest.raises(NodeError, match=r"destination root .* is a symlink"):
        await call(
            "zip_extract", {"path": str(tmp_path / "a.zip"), "destination": str(tmp_path / "dest")}
        )
    assert os.listdir(real) == []


async def test_zx_2_files_committed_before_a_failure_stay(call, tmp_path):
    destination = tmp_path / "d"
    destination.mkdir()
    (destination / "b.txt").mkdir()  # the second entry cannot be written
    make_zip(tmp_path / "a.zip", [("a.txt", b"first"), ("b.txt", b"second")])
    with pytest.raises(NodeError, match="not a regular file"):
        await call(
            "zip_extract", {"path": str(tmp_path / "a.zip"), "destination": str(destination)}
        )
    assert (destination / "a.txt").read_bytes() == b"first"
