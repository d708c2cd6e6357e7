"""Markdown and HTML nodes: ``markdown_to_html``, ``html_to_markdown``, ``html_sanitize`` (semantics.md#markup).

* Markdown is rendered by markdown-it-py with GitHub's extensions (tables,
  strikethrough, extended autolinks, task lists), shaped to read like the
  comrak output upstream gives: raw HTML in the Markdown is omitted, not
  passed through, strikethrough is ``<del>``, column alignment is ``align=``.
* HTML is sanitized by nh3, the Python binding of ammonia, the same
  sanitizer upstream uses, so the default policy is identical.
* HTML to Markdown is a small best-effort converter over the standard
  library's ``html.parser``; the contract asks only for substrings.

Heavy libraries are imported inside the run functions.
"""

from __future__ import annotations

import re
from functools import cache
from html.parser import HTMLParser
from typing import Any

import attrs

from ironflow_core.configs import Interpolated, lenient
from ironflow_core.context import NodeContext
from ironflow_core.errors import NodeError
from ironflow_core.nodes.textinput import text_input
from ironflow_core.params import BoolParam, JsonValue, lenient_bool
from ironflow_core.specs import NodeSpec

DEFAULT_LINK_REL = "noopener noreferrer"
_RAW_HTML_OMITTED = "<!-- raw HTML omitted -->"
_CONTENT_TAGS = frozenset({"script", "style"})
"""Tags ammonia always removes with their content; they can never be allowed."""


def _markup_input(ctx: NodeContext, node: str, input_: str | None, source_key: str | None) -> str:
    return text_input(
        ctx,
        input_,
        source_key,
        both=f"{node} accepts either 'input' or 'source_key', not both",
        neither=f"{node} requires either 'input' string or 'source_key'",
    )


# -- markdown_to_html ------------------------------------------------------------------


class _GfmLinkify:
    """linkify-it restricted to GFM's extended autolinks: schemes, ``www.`` and e-mails.

    Bare domains such as ``example.com`` are links for linkify-it but not for
    GitHub (nor upstream), so those matches are dropped.
    """

    def __init__(self) -> None:
        from linkify_it import LinkifyIt

        self._inner = LinkifyIt()

    def pretest(self, text: str) -> bool:
        return bool(self._inner.pretest(text))

    def test(self, text: str) -> bool:
        return bool(self.match(text))

    def match(self, text: str) -> list[Any] | None:
        found = [
            m for m in self._inner.match(text) or [] if m.schema or m.raw.lower().startswith("www.")
        ]
        return found or None

    def match_at_start(self, text: str) -> Any:
        return self._inner.match_at_start(text)


def _task_checkbox(content: str) -> str | None:
    if not content.startswith('<input class="task-list-item-checkbox"'):
        return None
    if 'checked="checked"' in content:
        return '<input type="checkbox" checked="" disabled="" />'
    return '<input type="checkbox" disabled="" />'


@cache
def _markdown_renderer() -> Any:
    """One configured parser per process (markdown-it's parser is reusable)."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.tasklists import tasklists_plugin

    md = MarkdownIt(
        "gfm-like",
        # maxNesting bounds markdown-it's recursive block parser; deeper content is dropped.
        {"html": True, "linkify": True, "typographer": False, "maxNesting": 100},
    )
    md.linkify = _GfmLinkify()
    md.use(tasklists_plugin)

    def html_block(*_args: Any) -> str:
        return _RAW_HTML_OMITTED + "\n"

    def html_inline(_renderer: Any, tokens: list[Any], index: int, *_args: Any) -> str:
        return _task_checkbox(tokens[index].content) or _RAW_HTML_OMITTED

    md.add_render_rule("html_block", html_block)
    md.add_render_rule("html_inline", html_inline)
    md.add_render_rule("s_open", lambda *_a: "<del>")
    md.add_render_rule("s_close", lambda *_a: "</del>")
    return md


_ALIGN = re.compile(r"text-align:(left|right|center)")


def _comrak_shape(tokens: list[Any]) -> None:
    """Drop the task-list classes and turn cell alignment styles into ``align=``."""
    for token in tokens:
        css = token.attrGet("class")
        if css in ("contains-task-list", "task-list-item"):
            del token.attrs["class"]
        style = token.attrGet("style")
        if isinstance(style, str) and (match := _ALIGN.fullmatch(style)):
            del token.attrs["style"]
            token.attrSet("align", match.group(1))


def render_markdown(text: str) -> str:
    """CommonMark + GFM to HTML, shaped like upstream's comrak output."""
    md = _markdown_renderer()
    env: dict[str, Any] = {}
    tokens = md.parse(text, env)
    _comrak_shape(tokens)
    for token in tokens:
        if token.children:
            _comrak_shape(token.children)
    return md.renderer.render(tokens, md.options, env)


@attrs.frozen
class MarkdownToHtmlConfig:
    """``markdown_to_html``'s parameters, as the flow's table gives them."""

    input: Interpolated | None = lenient()
    source_key: str | None = lenient()
    output_key: str = lenient("html")
    sanitize: BoolParam = None


async def markdown_to_html(ctx: NodeContext, config: MarkdownToHtmlConfig) -> dict[str, Any]:
    """MD-1: CommonMark + GFM to HTML, optionally through the ammonia default policy."""
    sanitize = lenient_bool(ctx, config.sanitize, False)
    text = _markup_input(ctx, "markdown_to_html", config.input, config.source_key)
    html = render_markdown(text)
    if sanitize:
        import nh3

        html = nh3.clean(html)
    return {config.output_key: html}


# -- html_sanitize ---------------------------------------------------------------------


@attrs.frozen
class HtmlSanitizeConfig:
    """``html_sanitize``'s parameters, as the flow's table gives them."""

    input: Interpolated | None = lenient()
    source_key: str | None = lenient()
    output_key: str = lenient("sanitized_html")
    allowed_tags: JsonValue = None
    """An array of tag names (non-strings are skipped); anything else means ammonia's default."""
    strip_comments: BoolParam = None
    link_rel: str = lenient(DEFAULT_LINK_REL)


async def html_sanitize(ctx: NodeContext, config: HtmlSanitizeConfig) -> dict[str, Any]:
    """MD-3: ammonia's default cleaner, or its builder with the given overrides."""
    strip_comments = lenient_bool(ctx, config.strip_comments, True)
    text = _markup_input(ctx, "html_sanitize", config.input, config.source_key)
    tags: set[str] | None = None
    if isinstance(config.allowed_tags, list):
        tags = {tag for tag in config.allowed_tags if isinstance(tag, str)}
        forbidden = sorted(tags & _CONTENT_TAGS)
        if forbidden:
            raise NodeError(
                f"html_sanitize: '{forbidden[0]}' cannot be an allowed tag: "
                "its content is always removed"
            )
    import nh3

    return {
        config.output_key: nh3.clean(text, tags=tags, strip_comments=strip_comments, link_rel=config.link_rel)
    }


# -- html_to_markdown ------------------------------------------------------------------

_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
     "track", "wbr"}
)  # fmt: skip
_SKIP = frozenset({"script", "style", "head", "title", "template", "noscript", "iframe"})
_BLOCK = frozenset(
    {"address", "article", "aside", "blockquote", "body", "dd", "details", "div", "dl", "dt",
     "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
     "header", "hr", "html", "li", "main", "nav", "ol", "p", "pre", "section", "summary",
     "table", "ul"}
)  # fmt: skip
_MAX_TREE_DEPTH = 100
"""Deeper elements are flattened into their ancestor: output stays bounded, never recursive."""
_ESCAPE = re.compile(r"([\\`*_\[\]])")
_SPACES = re.compile(r"\s+")


@attrs.define
class _Element:
    tag: str
    attributes: dict[str, str]
    children: list[_Element | str] = attrs.field(factory=list)


class _TreeBuilder(HTMLParser):
    """A forgiving HTML tree: unknown end tags ignored, open elements closed at the end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = _Element("root", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if len(self.stack) >= _MAX_TREE_DEPTH and tag not in _VOID:
            return  # too deep: the tag is dropped and its content flows into the parent
        element = _Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in _VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(_Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


class _MarkdownWriter:
    """Renders the tree to Markdown blocks; recursion depth is bounded by the tree."""

    def blocks(self, element: _Element) -> list[str]:
        out: list[str] = []
        run: list[str] = []

        def flush() -> None:
            text = "".join(run).strip()
            run.clear()
            if text:
                out.append(text)

        for child in element.children:
            if isinstance(child, str):
                run.append(self.text(child))
            elif child.tag in _SKIP:
                continue
            elif child.tag in _BLOCK or child.tag in ("tr", "thead", "tbody"):
                flush()
                out.extend(self.block(child))
            else:
                run.append(self.inline(child))
        flush()
        return [block for block in out if block]

    def block(self, element: _Element) -> list[str]:
        tag = element.tag
        if tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            text = self.inline_content(element).strip()
            return [f"{'#' * int(tag[1])} {text}"] if text else []
        if tag in ("ul", "ol"):
            return [self.list_block(element, ordered=tag == "ol")]
        if tag == "blockquote":
            inner = "\n\n".join(self.blocks(element))
            return ["\n".join(f"> {line}".rstrip() for line in inner.split("\n"))]
        if tag == "pre":
            return [self.code_block(element)]
        if tag == "hr":
            return ["---"]
        if tag == "table":
            return [self.table(element)]
        return self.blocks(element)

    def list_block(self, element: _Element, *, ordered: bool) -> str:
        items: list[str] = []
        start = element.attributes.get("start", "").strip()
        number = int(start) if ordered and start.isdigit() else 1
        for child in self.list_items(element):
            marker = f"{number}. " if ordered else "- "
            number += 1
            body = self.item_body(child)
            lines = body.split("\n")
            indent = " " * len(marker)
            rest = [f"{indent}{line}" if line else "" for line in lines[1:]]
            items.append("\n".join([marker + lines[0], *rest]).rstrip())
        return "\n".join(items)

    def list_items(self, element: _Element) -> list[_Element]:
        """The ``li`` children; stray content between them becomes an item of its own."""
        items: list[_Element] = []
        stray: list[_Element | str] = []
        for child in element.children:
            if isinstance(child, _Element) and child.tag == "li":
                if any(not isinstance(s, str) or s.strip() for s in stray):
                    items.append(_Element("li", {}, stray))
                stray = []
                items.append(child)
            else:
                stray.append(child)
        if any(not isinstance(s, str) or s.strip() for s in stray):
            items.append(_Element("li", {}, stray))
        return items

    def item_body(self, item: _Element) -> str:
        """A list item's blocks; a nested list follows the text above it on the next line."""
        parts: list[tuple[str, bool]] = []
        group: list[_Element | str] = []

        def flush() -> None:
            text = "\n\n".join(self.blocks(_Element("li", {}, list(group))))
            group.clear()
            if text:
                parts.append((text, False))

        for child in item.children:
            if isinstance(child, _Element) and child.tag in ("ul", "ol"):
                flush()
                nested = self.list_block(child, ordered=child.tag == "ol")
                if nested:
                    parts.append((nested, True))
            else:
                group.append(child)
        flush()
        body = ""
        for text, is_list in parts:
            if body:
                body += "\n" if is_list else "\n\n"
            body += text
        return body

    def code_block(self, element: _Element) -> str:
        language = ""
        for child in element.children:
            if isinstance(child, _Element) and child.tag == "code":
                for name in child.attributes.get("class", "").split():
                    if name.startswith("language-"):
                        language = name[len("language-") :]
        code = self.raw_text(element).rstrip("\n")
        fence = "```"
        while fence in code:
            fence += "`"
        return f"{fence}{language}\n{code}\n{fence}"

    def table(self, element: _Element) -> str:
        rows: list[list[str]] = []
        for row in self.rows(element):
            cells = [
                self.inline_content(cell).strip().replace("|", "\\|")
                for cell in row.children
                if isinstance(cell, _Element) and cell.tag in ("td", "th")
            ]
            if cells:
                rows.append(cells)
        if not rows:
            return ""
        width = max(len(row) for row in rows)
        rows = [row + [""] * (width - len(row)) for row in rows]
        lines = ["| " + " | ".join(rows[0]) + " |", "|" + " --- |" * width]
        lines.extend("| " + " | ".join(row) + " |" for row in rows[1:])
        return "\n".join(lines)

    def rows(self, element: _Element) -> list[_Element]:
        found: list[_Element] = []
        for child in element.children:
            if isinstance(child, _Element):
                if child.tag == "tr":
                    found.append(child)
                elif child.tag in ("thead", "tbody", "tfoot"):
                    found.extend(self.rows(child))
        return found

    def inline_content(self, element: _Element) -> str:
        return "".join(
            self.text(child) if isinstance(child, str) else self.inline(child)
            for child in element.children
        )

    def inline(self, element: _Element) -> str:
        tag = element.tag
        if tag in _SKIP:
            return ""
        if tag == "br":
            return "  \n"
        if tag == "img":
            alt = self.text(element.attributes.get("alt", ""))
            src = element.attributes.get("src", "")
            return f"![{alt}]({src})" if src else ""
        if tag == "input" and element.attributes.get("type") == "checkbox":
            return "[x]" if "checked" in element.attributes else "[ ]"
        content = self.inline_content(element)
        if tag in ("strong", "b"):
            return _wrap("**", content)
        if tag in ("em", "i"):
            return _wrap("*", content)
        if tag in ("del", "s", "strike"):
            return _wrap("~~", content)
        if tag == "code":
            code = self.raw_text(element)
            tick = "``" if "`" in code else "`"
            return f"{tick}{code}{tick}" if code else ""
        if tag == "a":
            href = element.attributes.get("href", "")
            if not href:
                return content
            if " " in href:
                href = f"<{href}>"
            title = element.attributes.get("title")
            suffix = f' "{title}"' if title else ""
            return f"[{content.strip()}]({href}{suffix})"
        return content

    def text(self, data: str) -> str:
        return _ESCAPE.sub(r"\\\1", _SPACES.sub(" ", data))

    def raw_text(self, element: _Element) -> str:
        return "".join(
            child if isinstance(child, str) else self.raw_text(child) for child in element.children
        )


def _wrap(marker: str, content: str) -> str:
    inner = content.strip()
    if not inner:
        return content
    lead = " " if content[:1].isspace() else ""
    trail = " " if content[-1:].isspace() else ""
    return f"{lead}{marker}{inner}{marker}{trail}"


def html_to_markdown_text(html: str) -> str:
    """Best-effort Markdown of an HTML fragment (MD-2)."""
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return "\n\n".join(_MarkdownWriter().blocks(builder.root))


@attrs.frozen
class HtmlToMarkdownConfig:
    """``html_to_markdown``'s parameters, as the flow's table gives them."""

    input: Interpolated | None = lenient()
    source_key: str | None = lenient()
    output_key: str = lenient("markdown")


async def html_to_markdown(ctx: NodeContext, config: HtmlToMarkdownConfig) -> dict[str, Any]:
    """MD-2: best-effort Markdown of the HTML (empty input gives empty output)."""
    text = _markup_input(ctx, "html_to_markdown", config.input, config.source_key)
    return {config.output_key: html_to_markdown_text(text)}


NODES: list[NodeSpec] = [
    NodeSpec(
        name="markdown_to_html",
        run=markdown_to_html,
        config=MarkdownToHtmlConfig,
        summary="Convert Markdown text to HTML",
    ),
    NodeSpec(
        name="html_to_markdown",
        run=html_to_markdown,
        config=HtmlToMarkdownConfig,
        summary="Convert HTML to Markdown (best-effort, lossy on complex HTML)",
    ),
    NodeSpec(
        name="html_sanitize",
        run=html_sanitize,
        config=HtmlSanitizeConfig,
        summary="Sanitize HTML by removing dangerous tags, attributes, and scripts",
    ),
]
