"""The example nodes, run through real flows with ``ironflow_core.testing``."""

from __future__ import annotations

import pytest

from ironflow_core.errors import FlowValidationError
from ironflow_core.testing import assert_plugin_installed
from ironflow_nodes_example.nodes import count_words, slugify_text


def one_step(node: str, config: str) -> str:
    """A flow with one step named ``s`` running ``nodes.<node>({<config>})``."""
    return f"""
        local flow = Flow.new("example")
        flow:step("s", nodes.{node}({{ {config} }}))
        return flow
    """


# ------------------------------------------------------------ installation
def test_entry_point_nodes_example_is_installed_and_active():
    record = assert_plugin_installed("nodes-example", nodes=["slugify", "word_count"])
    assert record.distribution == "ironflow-nodes-example"


def test_nodes_are_listed_with_their_plugin(ironflow_registry):
    assert ironflow_registry.node_providers["slugify"] == "ironflow_nodes_example.plugin"
    assert ironflow_registry.nodes["word_count"].summary.startswith("Count the words")


# ----------------------------------------------------------------- slugify
def test_slugify_renders_input_then_folds_accents_and_punctuation(run_flow):
    result = run_flow(one_step("slugify", 'input = "${ctx.title}"'),
                      context={"title": "Crème Brûlée, 2 ways!"})
    result.assert_succeeded()
    assert result.ctx["slug"] == "creme-brulee-2-ways"
    assert result.output("s") == {"slug": "creme-brulee-2-ways"}


def test_slugify_reads_source_key_and_honours_output_key_and_separator(run_flow):
    result = run_flow(
        one_step("slugify", 'source_key = "name", output_key = "file", separator = "_"'),
        context={"name": "Quarterly Report (Final)"},
    )
    result.assert_succeeded()
    assert result.ctx["file"] == "quarterly_report_final"


def test_slugify_max_length_keeps_whole_words_and_accepts_numeric_strings(run_flow):
    result = run_flow(one_step("slugify", 'input = "The quick brown fox", max_length = "${ctx.n}"'),
                      context={"n": 12})
    result.assert_succeeded()
    assert result.ctx["slug"] == "the-quick"


def test_slugify_keeps_letters_of_every_script_and_case_on_request():
    assert slugify_text("Привет, мир") == "привет-мир"
    assert slugify_text("Hello World", lowercase=False) == "Hello-World"
    assert slugify_text("snake_case__name") == "snake-case-name"
    assert slugify_text("Supercalifragilistic", max_length=5) == "super"
    assert slugify_text("  ***  ") == ""


def test_slugify_without_text_fails_naming_both_parameters(run_flow):
    result = run_flow(one_step("slugify", ""))
    result.assert_failed("s")
    assert result.tasks["s"].error == "slugify requires 'input' or 'source_key'"


def test_slugify_missing_or_non_string_key_fails_with_node_conventions(run_flow):
    missing = run_flow(one_step("slugify", 'source_key = "nope"'))
    assert missing.tasks["s"].error == "Key 'nope' not found in context"
    wrong = run_flow(one_step("slugify", 'source_key = "n"'), context={"n": 5})
    assert wrong.tasks["s"].error == "Value at 'n' is not a string"


def test_slugify_invalid_max_length_is_a_step_error(run_flow):
    result = run_flow(one_step("slugify", 'input = "x", max_length = "lots"'))
    assert result.tasks["s"].error == (
        "'max_length' must be a non-negative whole number in u64 range"
    )


def test_slugify_wrong_field_type_is_reported_before_the_run(run_flow):
    # Config classes are structured when the flow is planned, before the run:
    # a wrong type is a FlowValidationError.
    with pytest.raises(FlowValidationError) as caught:
        run_flow(one_step("slugify", 'input = "x", separator = 1'))
    assert "$.separator" in str(caught.value)
    assert "'s'" in str(caught.value)


# -------------------------------------------------------------- word_count
def test_word_count_counts_words_characters_lines_and_top_words(run_flow):
    text = "The cat saw the dog.\nThe dog didn't care: well-known dogs don't."
    result = run_flow(one_step("word_count", 'source_key = "body", top = 2'),
                      context={"body": text})
    result.assert_succeeded()
    assert result.ctx["word_count"] == 12
    assert result.ctx["word_count_characters"] == len(text)
    assert result.ctx["word_count_lines"] == 2
    assert result.ctx["word_count_top"] == [
        {"word": "the", "count": 3},
        {"word": "dog", "count": 2},
    ]


def test_word_count_without_top_writes_exactly_three_keys(run_flow):
    result = run_flow(one_step("word_count", 'input = "${ctx.a} ${ctx.b}", output_key = "wc"'),
                      context={"a": "one two", "b": "three"})
    assert result.output("s") == {"wc": 3, "wc_characters": 13, "wc_lines": 1}


def test_word_count_of_empty_text_is_zero():
    assert count_words("") == {"words": 0, "characters": 0, "lines": 0}


def test_word_count_feeds_a_later_step(run_flow):
    result = run_flow("""
        local flow = Flow.new("pipeline")
        flow:step("count", nodes.word_count({ input = "${ctx.body}" }))
        flow:step("report", nodes.template_render({
            template = "${ctx.word_count} words", output_key = "report",
        })):depends_on("count")
        return flow
    """, context={"body": "alpha beta gamma"})
    result.assert_succeeded()
    assert result.ctx["report"] == "3 words"
    assert result.events.types("report") == ["task_started", "task_succeeded"]


async def test_nodes_run_inside_an_async_test(arun_flow):
    result = await arun_flow(one_step("slugify", 'input = "Async Works"'))
    result.assert_succeeded()
    assert result.ctx["slug"] == "async-works"
