"""Entry points of one group, read from the installed distributions' metadata folders.

``importlib.metadata`` costs about a fifth of ``ironflow``'s start-up to
import (it pulls in ``email``, ``zipfile``, ``csv`` and more) before it reads
a single file. Plugin discovery only needs the ``entry_points.txt`` of each
distribution, so this module reads those directly, the way
``importlib.metadata`` finds them: every ``*.dist-info`` / ``*.egg-info``
folder of each ``sys.path`` directory, in path order, the first distribution
of a (normalised) name winning. ``METADATA`` is read only for distributions
that have an entry point in the group (name and version, for
``ironflow plugins``).

Anything this reader does not cover (a zip or egg file on ``sys.path``, a meta
path finder with its own ``find_distributions``) hands the whole lookup to
``importlib.metadata``, so discovery finds the same plugins either way.
"""

from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from collections.abc import Iterator
from typing import Any, NamedTuple

_SUFFIXES = (".dist-info", ".egg-info")
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


class Distribution(NamedTuple):
    """Name and version of the distribution an entry point comes from."""

    name: str
    version: str


class EntryPoint(NamedTuple):
    """``name = module:attr`` of one group, with its distribution.

    Tuples rather than attrs classes: building a class costs start-up time.
    """

    name: str
    value: str
    group: str
    dist: Distribution | None

    def load(self) -> Any:
        """Import the module and return the object the entry point names."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"invalid entry point value {self.value!r}")
        module = importlib.import_module(match.group("module"))
        attr_path = (match.group("attr") or "").split(".")
        return functools.reduce(getattr, filter(None, attr_path), module)


def entry_points(group: str) -> list[EntryPoint]:
    """Every entry point of ``group``, in ``importlib.metadata``'s distribution order."""
    if not _plain_paths():
        return _from_importlib(group)
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for folder in _metadata_folders():
        stem = os.path.basename(folder).lower().rpartition(".")[0]
        key = _normalise(stem.partition("-")[0])
        if key in seen:
            continue
        seen.add(key)
        try:
            with open(os.path.join(folder, "entry_points.txt"), encoding="utf-8") as f:
                text = f.read()
        except OSError:  # no entry points (or unreadable: importlib skips it too)
            continue
        pairs = list(_section(text, group))
        if pairs:
            dist = _distribution(folder)
            found.extend(EntryPoint(name, value, group, dist) for name, value in pairs)
    return found


def _plain_paths() -> bool:
    """True when ``sys.path`` holds plain directories and only the standard finder lists distributions."""
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if finder is not PathFinder and hasattr(finder, "find_distributions"):
            return False
    return all(not entry or not (entry.lower().endswith(".egg") or os.path.isfile(entry))
               for entry in sys.path)


def _metadata_folders() -> Iterator[str]:
    for entry in sys.path:
        root = entry or "."
        try:
            names = sorted(os.listdir(root))
        except OSError:
            continue
        for name in names:
            if name.lower().endswith(_SUFFIXES):
                path = os.path.join(root, name)
                if os.path.isdir(path):
                    yield path


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


def _section(text: str, group: str) -> Iterator[tuple[str, str]]:
    """``name = value`` lines of ``[group]`` (``#`` starts a comment line)."""
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] == "#":
            continue
        if line[0] == "[" and line[-1] == "]":
            current = line[1:-1].strip()
            continue
        if current == group:
            name, sep, value = line.partition("=")
            if sep:
                yield name.strip(), value.strip()


def _distribution(folder: str) -> Distribution | None:
    """Name and version from the folder's ``METADATA`` (``PKG-INFO`` for an egg) headers."""
    for file in ("METADATA", "PKG-INFO"):
        try:
            with open(os.path.join(folder, file), encoding="utf-8") as f:
                headers = _headers(f)
        except OSError:
            continue
        return Distribution(headers.get("name", ""), headers.get("version", ""))
    return None


def _headers(lines: Iterator[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for line in lines:
        if not line.strip():
            break
        key, sep, value = line.partition(":")
        if sep and key.lower() in ("name", "version") and key.lower() not in found:
            found[key.lower()] = value.strip()
        if len(found) == 2:
            break
    return found


def _from_importlib(group: str) -> list[EntryPoint]:
    from importlib.metadata import entry_points as _entry_points

    return [
        EntryPoint(ep.name, ep.value, group,
                   Distribution(ep.dist.name, ep.dist.version) if ep.dist else None)
        for ep in _entry_points(group=group)
    ]
