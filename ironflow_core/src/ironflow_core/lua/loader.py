"""The Lua flow loader (semantics.md#flow-files to #node-factories, DSL-110/111 in validation mode).

The flow file is evaluated once, top to bottom, in a fresh sandboxed loader
state with the limits of DSL-92; the returned table is read by fields
(``dsl.lua``'s ``extract``) and each step config is converted to JSON with
paths rooted at ``$.steps["<name>"].config``. The result is a raw
``FlowDefinition``: node types, names and configs are checked by the planner
alone (``engine.planner.plan_flow``), which reports every problem at once.
A Lua error while the file is evaluated is a ``FlowLoadError``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from ironflow_core.errors import FlowLoadError, FlowProblem
from ironflow_core.gc_pause import paused_gc
from ironflow_core.lua import functions
from ironflow_core.lua.errors import LuaCompileError, LuaExecutionError
from ironflow_core.lua.state import LuaState, compiled_chunk
from ironflow_core.model import Diagnostic, FlowDefinition, StepDefinition
from ironflow_core.settings import LuaLimits
from ironflow_core.specs import FlowSource, LoadOptions

INLINE_CHUNK = "=<inline>"
_POSITION = re.compile(r"^[^\n]*?:(\d+): ")


def load_lua_flow(source: FlowSource, options: LoadOptions) -> FlowDefinition:
    """Evaluate a flow source and return its definition (``LoaderSpec.load``)."""
    return _Loader(source, options).load()


class _Loader:
    def __init__(self, source: FlowSource, options: LoadOptions) -> None:
        self.source = source
        self.options = options
        self.nodes = options.nodes
        self.path = source.path
        if self.path is not None:
            self.prefix = f"Failed to evaluate flow file '{self.path}': "
            self.where = f"Flow file '{self.path}'"
            self.chunkname = "@" + self.path
        else:
            self.prefix = "Failed to evaluate flow source: "
            self.where = "Flow source"
            self.chunkname = INLINE_CHUNK
        self.ranges: list[tuple[int, int]] = []

    def error(self, message: str, **where: Any) -> FlowLoadError:
        """A load error in this source."""
        return FlowLoadError(message, path=self.path, **where)

    def lua_error(self, message: str) -> FlowLoadError:
        """A Lua error message as a load error naming the file in full and the line."""
        match = _POSITION.match(message)
        line = int(match.group(1)) if match else None
        if match and self.path is not None:
            # Lua shortens long chunk names ("...of-root/x.lua"); name the file in full.
            message = f"{self.path}:{line}: {message[match.end():]}"
        return self.error(self.prefix + message, line=line)

    def load(self) -> FlowDefinition:
        """Evaluate the source and read the flow it returns."""
        limits = LuaLimits.from_env(self.options.env)
        vm = LuaState(limits, env=self.options.env, runtime=False, cancel=self.options.cancel)
        try:
            extract = self._install_dsl(vm)
            try:
                chunk = vm.load(self.source.text.encode("utf-8"), self.chunkname)
                results = vm.call(chunk)
                flow = results[0] if results else None
                # Counted: user code that reading the flow runs (metamethods)
                # shares the flow file's instruction budget (dsl.lua's extract).
                text, deterministic = vm.call(
                    extract, flow, limits.max_conversion_depth, limits.max_conversion_nodes
                )
            except (LuaCompileError, LuaExecutionError) as exc:
                raise self.lua_error(str(exc)) from None
            with paused_gc():  # thousands of acyclic containers: nothing to collect
                document = _parse(text)
                records = document["steps"]
                for raw in records:  # DSL-26: the config carries its step's name
                    config = raw["config"]
                    if type(config) is not dict:
                        raise self._not_named_fields(raw)
                    config.pop("_node_type", None)
                    config["_step_name"] = raw["name"]
            warnings: list[Diagnostic] = []
            if self.options.analyze:
                warnings = self._analyze(vm, records)
        finally:
            vm.close()
        with paused_gc():
            return self._definition(document["name"], records, warnings, deterministic is True)

    def _install_dsl(self, vm: LuaState) -> Any:
        record = None
        if self.options.analyze:
            def remember(first: int, last: int) -> tuple[()]:
                self.ranges.append((first, last))
                return ()
            record = vm.host(remember)
        names = ",".join(name for name in self.nodes if "," not in name)
        return vm.lua.execute(
            compiled_chunk("dsl.lua"), vm.loader_privates, vm.host(functions.sign), record,
            names.encode(), vm.to_json_function,
        )

    def _not_named_fields(self, raw: dict[str, Any]) -> FlowLoadError:
        return self.error(
            f"{self.where}: Step '{raw['name']}' config must be a table of named fields",
            step=raw["name"], line=raw.get("line"),
        )

    def _analyze(self, vm: LuaState, records: list[dict[str, Any]]) -> list[Diagnostic]:
        """DSL-110 (compile string code sources) and DSL-111 (undefined globals)."""
        from ironflow_core.loading import max_source_bytes
        from ironflow_core.lua import analysis  # only validate analyses: not at start-up

        warnings = analysis.analyze_handlers(self.source.text, self.ranges)
        limit = max_source_bytes(self.options.env)
        total = 0
        for record in records:
            config = record["config"]
            source = config.get("source")
            if record["node_type"] != "code" or not isinstance(source, str):
                continue
            if "bytecode_b64" in config:
                continue
            total += len(source.encode("utf-8"))
            if total > limit:
                raise self.error(
                    f"{self.where}: Lua code sources exceed the flow source limit of {limit} "
                    "bytes (IRONFLOW_MAX_FLOW_SOURCE_BYTES)",
                    step=record["name"],
                )
            detail = compile_error(vm, source)
            if detail is not None:
                raise self.error(
                    f"Step '{record['name']}' has invalid Lua code source: {detail}",
                    step=record["name"], line=record.get("line"), field="source",
                )
            warnings.extend(analysis.analyze_code_source(source, record["name"]))
        return warnings

    def _definition(
        self, name: str, records: list[dict[str, Any]], warnings: list[Diagnostic],
        deterministic: bool,
    ) -> FlowDefinition:
        steps: list[StepDefinition] = []
        problems: list[FlowProblem] = []
        append = steps.append
        for record in records:
            # The extraction writes these fields only when a step sets them.
            get = record.get
            step_name = record["name"]
            if "bad_dependencies" in record:
                for bad in record["bad_dependencies"]:
                    problems.append(FlowProblem(
                        self._bad_dependency(step_name, bad), line=bad.get("line"),
                        step=step_name, placed=True,
                    ))
            timeout = get("timeout_s")
            append(StepDefinition(
                name=step_name,
                node_type=record["node_type"],
                config=record["config"],
                dependencies=tuple(record["dependencies"]),
                max_retries=int(get("max_retries", 0)),
                backoff_s=float(get("backoff_s", 1.0)),
                timeout_s=None if timeout is None else float(timeout),
                route=get("route"),
                on_error=get("on_error"),
                line=get("line"),
            ))
        return FlowDefinition(
            name=name, steps=tuple(steps), source_path=self.path, warnings=tuple(warnings),
            problems=tuple(problems), deterministic=deterministic,
        )

    def _bad_dependency(self, step: str, bad: dict[str, Any]) -> str:
        """DSL-30 as amended: a non-string dependency is an error, not silently dropped."""
        line = bad.get("line")
        at = f"{self.path}:{line}" if self.path and line else (f"line {line}" if line else "")
        where = f" at {at}" if at else ""
        what = bad.get("what", "a value")
        hint = ""
        if what.startswith("the builder of step '"):
            hint = f"; pass its name: :depends_on(\"{what[len('the builder of step '):].strip(chr(39))}\")"
        return (f"Step '{step}' depends on {what}{where}, but dependencies must be step "
                f"names (strings){hint}")


def _parse(text: bytes) -> Any:
    """The extraction's JSON text (well-formed by construction): orjson, or json beyond its limits."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # e.g. nesting deeper than orjson's limit
        return json.loads(text)


def compile_error(vm: LuaState, source: str) -> str | None:
    """CD-3 / DSL-110: None if ``source`` compiles as ``return <src>`` or as a chunk."""
    data = source.encode("utf-8")
    try:
        vm.load(b"return " + data, "=code")
        return None
    except LuaCompileError:
        pass
    try:
        vm.load(data, "=code")
        return None
    except LuaCompileError as exc:
        return str(exc)
