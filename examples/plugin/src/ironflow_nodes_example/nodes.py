"""The nodes: ``slugify`` (text -> URL-safe slug) and ``word_count`` (text statistics).

Both read their text from ``input`` (interpolated with ``${ctx...}``) or from
a top-level context key named by ``source_key``, following IronFlow's node
conventions: a missing parameter or key fails the step with a message naming
it, and results go under ``output_key`` with ``<output_key>_<suffix>``
companions.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

import attrs

from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.params import lenient_bool, source_value, strict_u64
from ironflow_core.specs import NodeSpec

_WORD_CHARS = re.compile(r"[^\W_]+")
"""A run of letters or digits in any script (``_`` is punctuation here)."""

_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")
"""A word: letters/digits, joined by inner apostrophes or hyphens (don't, well-known)."""


def _text(ctx: NodeContext, node: str, input_: str | None, source_key: str | None) -> str:
    """The node's text: ``input`` (interpolated) wins over ``source_key``."""
    if input_ is not None:
        return ctx.interpolate(input_)
    if source_key is not None:
        value = source_value(ctx, source_key)
        if not isinstance(value, str):
            raise NodeError(f"Value at '{source_key}' is not a string")
        return value
    raise NodeError(f"{node} requires 'input' or 'source_key'")


# ------------------------------------------------------------------ slugify
@attrs.frozen
class SlugifyConfig:
    input: str | None = None
    """The text to slugify; ``${ctx...}`` placeholders are rendered first."""
    source_key: str | None = None
    """A top-level context key holding the text (used when ``input`` is absent)."""
    output_key: str = "slug"
    separator: str = "-"
    max_length: Any = None
    """Longest slug in characters (number or numeric string); 0 or absent = no limit."""
    lowercase: Any = None
    """Lower-case the slug (default true); booleans or ``yes``/``no``-style strings."""


def slugify_text(text: str, *, separator: str = "-", max_length: int = 0,
                 lowercase: bool = True) -> str:
    """Fold accents away, keep runs of letters and digits, join them with ``separator``.

    With ``max_length`` the slug keeps as many whole words as fit; a first
    word longer than the limit is cut.
    """
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    if lowercase:
        plain = plain.lower()
    words = _WORD_CHARS.findall(plain)
    if not max_length:
        return separator.join(words)
    slug = ""
    for word in words:
        candidate = f"{slug}{separator}{word}" if slug else word
        if len(candidate) > max_length:
            return slug or word[:max_length]
        slug = candidate
    return slug


async def slugify(ctx: NodeContext, config: SlugifyConfig) -> dict[str, Any]:
    text = _text(ctx, "slugify", config.input, config.source_key)
    max_length = strict_u64(ctx, "max_length", config.max_length, 0)
    lowercase = lenient_bool(ctx, config.lowercase, True)
    return {
        config.output_key: slugify_text(
            text, separator=config.separator, max_length=max_length, lowercase=lowercase
        )
    }


# --------------------------------------------------------------- word_count
@attrs.frozen
class WordCountConfig:
    input: str | None = None
    """The text to measure; ``${ctx...}`` placeholders are rendered first."""
    source_key: str | None = None
    """A top-level context key holding the text (used when ``input`` is absent)."""
    output_key: str = "word_count"
    top: Any = None
    """Also report the N most frequent words (number or numeric string; default 0)."""


def count_words(text: str, top: int = 0) -> dict[str, Any]:
    """Words, characters and lines of ``text``; with ``top``, its most frequent words."""
    words = _WORD.findall(text)
    stats: dict[str, Any] = {
        "words": len(words),
        "characters": len(text),
        "lines": len(text.splitlines()),
    }
    if top:
        counts = Counter(w.lower() for w in words)
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]
        stats["top"] = [{"word": w, "count": n} for w, n in ranked]
    return stats


async def word_count(ctx: NodeContext, config: WordCountConfig) -> dict[str, Any]:
    text = _text(ctx, "word_count", config.input, config.source_key)
    top = strict_u64(ctx, "top", config.top, 0)
    stats = count_words(text, top)
    key = config.output_key
    output = {
        key: stats["words"],
        f"{key}_characters": stats["characters"],
        f"{key}_lines": stats["lines"],
    }
    if "top" in stats:
        output[f"{key}_top"] = stats["top"]
    return output


NODES = [
    NodeSpec(
        name="slugify",
        run=slugify,
        config=SlugifyConfig,
        summary="Turn text into a URL-safe slug",
    ),
    NodeSpec(
        name="word_count",
        run=word_count,
        config=WordCountConfig,
        summary="Count the words, characters and lines of a text",
    ),
]
