"""Node-level tests for markdown_to_html, html_to_markdown, html_sanitize (semantics.md#markup)."""

from __future__ import annotations

from typing import Any

import pytest

from ironflow_core.errors import NodeError
from ironflow_core.registry import build_registry
from ironflow_core.testing import call_node

REGISTRY = build_registry()
EXAMPLE_MD = (
    "# Hello World\n\nThis is **bold** and *italic*.\n\n- Item 1\n- Item 2\n\n"
    "| Col A | Col B |\n|-------|-------|\n| 1     | 2     |"
)


async def run_node(
    node_type: str, raw: dict[str, Any], data: dict[str, Any] | None = None
) -> dict[str, Any]:
    return await call_node(node_type, raw, data, registry=REGISTRY)


async def fails(node_type: str, raw: dict[str, Any], data: dict[str, Any] | None = None) -> str:
    with pytest.raises(NodeError) as info:
        await run_node(node_type, raw, data)
    return str(info.value)


async def to_html(markdown: str, **extra: Any) -> str:
    return (await run_node("markdown_to_html", {"input": markdown, **extra}))["html"]


async def to_markdown(html: str) -> str:
    return (await run_node("html_to_markdown", {"input": html}))["markdown"]


def test_appendix_b_summaries() -> None:
    summaries = {name: REGISTRY.nodes[name].summary for name in REGISTRY.nodes}
    assert summaries["markdown_to_html"] == "Convert Markdown text to HTML"
    assert summaries["html_to_markdown"] == (
        "Convert HTML to Markdown (best-effort, lossy on complex HTML)"
    )
    assert summaries["html_sanitize"] == (
        "Sanitize HTML by removing dangerous tags, attributes, and scripts"
    )


# -- markdown_to_html ------------------------------------------------------------------


async def test_md_1_markdown_conversion_example() -> None:
    html = await to_html(EXAMPLE_MD, sanitize=True)
    assert "<h1>Hello World</h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<em>italic</em>" in html
    assert "<li>Item 1</li>" in html
    assert "<table>" in html
    assert "<th>Col A</th>" in html
    assert "<td>2</td>" in html


async def test_md_1_gfm_strikethrough_alignment_and_task_lists() -> None:
    html = await to_html("~~gone~~\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n\n- [ ] todo\n- [x] done")
    assert "<del>gone</del>" in html
    assert '<th align="left">a</th>' in html
    assert '<td align="right">2</td>' in html
    assert '<li><input type="checkbox" disabled="" /> todo</li>' in html
    assert '<li><input type="checkbox" checked="" disabled="" /> done</li>' in html


async def test_md_1_gfm_autolinks() -> None:
    html = await to_html("see www.example.com, https://x.org/a?b=1 and a@b.com; not example.com")
    assert '<a href="http://www.example.com">www.example.com</a>' in html
    assert '<a href="https://x.org/a?b=1">https://x.org/a?b=1</a>' in html
    assert '<a href="mailto:a@b.com">a@b.com</a>' in html
    assert "not example.com" in html


async def test_md_1_raw_html_is_omitted_and_unsafe_links_are_not_links() -> None:
    html = await to_html("<script>alert(1)</script>\n\ntext <b>x</b> [j](javascript:alert(1))")
    assert "<script>" not in html
    assert "<b>" not in html
    assert "<!-- raw HTML omitted -->" in html
    assert 'href="javascript' not in html


async def test_md_1_sanitize_uses_the_ammonia_default_policy() -> None:
    html = await to_html("[l](https://x.org) <!-- c -->\n\n```rust\nfn x() {}\n```", sanitize="on")
    assert '<a href="https://x.org" rel="noopener noreferrer">l</a>' in html
    assert "<pre><code>fn x() {}" in html  # ammonia drops class attributes
    plain = await to_html("[l](https://x.org)", sanitize="maybe")  # lenient: default false
    assert 'rel="' not in plain


async def test_md_1_input_rules() -> None:
    out = await run_node(
        "markdown_to_html", {"source_key": "md", "output_key": "out"}, {"md": "*x*"}
    )
    assert out == {"out": "<p><em>x</em></p>\n"}
    out = await run_node("markdown_to_html", {"source_key": "n"}, {"n": {"k": 1}})
    assert out == {"html": "<p>{&quot;k&quot;:1}</p>\n"}
    out = await run_node("markdown_to_html", {"input": "# ${ctx.t}"}, {"t": "Hi"})
    assert out == {"html": "<h1>Hi</h1>\n"}
    assert await fails("markdown_to_html", {"input": "a", "source_key": "b"}) == (
        "markdown_to_html accepts either 'input' or 'source_key', not both"
    )
    assert await fails("markdown_to_html", {}) == (
        "markdown_to_html requires either 'input' string or 'source_key'"
    )


async def test_md_1_deep_nesting_is_bounded() -> None:
    html = await to_html("> " * 50 + "deep")
    assert html.count("<blockquote>") == 50
    assert "<p>deep</p>" in html
    # Far deeper input is cut at markdown-it's nesting guard instead of exhausting the stack.
    html = await to_html("> " * 5000 + "deep")
    assert html.count("<blockquote>") <= 100


# -- html_to_markdown ------------------------------------------------------------------


async def test_md_2_basic_tags() -> None:
    md = await to_markdown("<h1>Title</h1><p>A <b>bold</b> paragraph.</p>")
    assert "# Title" in md
    assert "**bold**" in md


async def test_md_2_links_lists_code_and_tables() -> None:
    md = await to_markdown(
        '<p>Visit <a href="https://example.com">Example</a> site.</p>'
        "<ul><li>a<ul><li>b</li></ul></li><li><em>c</em></li></ul>"
        "<ol start='3'><li>three</li></ol><pre><code class='language-py'>x = 1\n</code></pre>"
        "<table><tr><th>h</th></tr><tr><td>1</td></tr></table><hr><blockquote>q</blockquote>"
        "<p><del>old</del> <code>a_b</code> <img src='i.png' alt='pic'></p>"
    )
    assert "[Example](https://example.com)" in md
    assert "- a\n  - b\n- *c*" in md
    assert "3. three" in md
    assert "```py\nx = 1\n```" in md
    assert "| h |\n| --- |\n| 1 |" in md
    assert "> q" in md
    assert "~~old~~ `a_b` ![pic](i.png)" in md


async def test_md_2_round_trip_of_the_example() -> None:
    html = await to_html(EXAMPLE_MD, sanitize=True)
    out = await run_node("html_to_markdown", {"source_key": "html"}, {"html": html})
    assert "Hello World" in out["markdown"]
    assert "**bold**" in out["markdown"]
    assert "| Col A | Col B |" in out["markdown"]


async def test_md_2_entities_scripts_and_empty_input() -> None:
    md = await to_markdown("<head><title>T</title></head><p>x &amp; y</p><script>bad()</script>")
    assert md == "x & y"
    assert (await to_markdown("")).strip() == ""
    out = await run_node("html_to_markdown", {"source_key": "h"}, {"h": "<h2>Heading</h2>"})
    assert "Heading" in out["markdown"]
    out = await run_node("html_to_markdown", {"input": "<p>text</p>", "output_key": "md_out"})
    assert out == {"md_out": "text"}


async def test_md_2_pathological_nesting_is_bounded() -> None:
    md = await to_markdown("<div>" * 5000 + "deep" + "</div>" * 5000)
    assert md == "deep"
    md = await to_markdown("<ul><li>" * 500 + "x" + "</li></ul>" * 500)
    assert "x" in md


async def test_md_2_input_rules() -> None:
    assert await fails("html_to_markdown", {"input": "a", "source_key": "b"}) == (
        "html_to_markdown accepts either 'input' or 'source_key', not both"
    )
    assert await fails("html_to_markdown", {}) == (
        "html_to_markdown requires either 'input' string or 'source_key'"
    )


# -- html_sanitize ---------------------------------------------------------------------


async def test_md_3_vector() -> None:
    out = await run_node(
        "html_sanitize",
        {
            "input": '<h1>Hello</h1><script>alert("xss")</script><p onclick="steal()">Safe text</p>',
            "output_key": "clean_html",
        },
    )
    assert out == {"clean_html": "<h1>Hello</h1><p>Safe text</p>"}


async def test_md_3_defaults_keep_safe_markup_and_add_link_rel() -> None:
    out = await run_node(
        "html_sanitize",
        {"input": '<p><b>bold</b> <a href="https://example.com">link</a><!-- c --></p>'},
    )
    assert out == {
        "sanitized_html": '<p><b>bold</b> <a href="https://example.com" '
        'rel="noopener noreferrer">link</a></p>'
    }
    assert await run_node("html_sanitize", {"input": ""}) == {"sanitized_html": ""}


async def test_md_3_allowed_tags_replace_the_set() -> None:
    out = await run_node(
        "html_sanitize", {"input": "<p><b>x</b><i>y</i></p>", "allowed_tags": ["b", 7, "p"]}
    )
    assert out == {"sanitized_html": "<p><b>x</b>y</p>"}


async def test_md_3_strip_comments_and_link_rel() -> None:
    out = await run_node(
        "html_sanitize", {"input": "<p>x<!-- keep --></p>", "strip_comments": "no"}
    )
    assert out == {"sanitized_html": "<p>x<!-- keep --></p>"}
    out = await run_node("html_sanitize", {"input": '<a href="/x">l</a>', "link_rel": "nofollow"})
    assert out == {"sanitized_html": '<a href="/x" rel="nofollow">l</a>'}


async def test_md_3_content_tags_cannot_be_allowed() -> None:
    message = await fails(
        "html_sanitize", {"input": "<script>x</script>", "allowed_tags": ["script"]}
    )
    assert message == (
        "html_sanitize: 'script' cannot be an allowed tag: its content is always removed"
    )


async def test_md_3_input_rules() -> None:
    out = await run_node(
        "html_sanitize",
        {"source_key": "raw"},
        {"raw": "<div><script>bad</script><p>good</p></div>"},
    )
    assert out == {"sanitized_html": "<div><p>good</p></div>"}
    assert await fails("html_sanitize", {"input": "a", "source_key": "b"}) == (
        "html_sanitize accepts either 'input' or 'source_key', not both"
    )
    message = await fails("html_sanitize", {})
    assert message == "html_sanitize requires either 'input' string or 'source_key'"
