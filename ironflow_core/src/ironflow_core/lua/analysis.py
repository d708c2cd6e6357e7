"""Undefined-global warnings for validation mode (DSL-111).

A small Lua 5.4 tokenizer and recursive-descent parser that only tracks
scopes: which names are declared where (``local``, parameters, ``for``
variables, ``local function``), and which name reads resolve to no local.
Serialized function handlers are analysed in flow-file coordinates (found by
the line range Lua reports for them); string ``code`` sources relative to the
decoded string. Anything the parser does not understand yields no warnings:
Lua itself reports syntax errors, and the exact warning set is not part of
the contract (the error/warning split is).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import attrs

from ironflow_core.model import Diagnostic

RUNTIME_GLOBALS = frozenset({
    "_G", "_VERSION", "assert", "error", "getmetatable", "ipairs", "math", "next", "pairs",
    "pcall", "print", "rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable",
    "string", "table", "tonumber", "tostring", "type", "utf8", "xpcall", "ctx", "env",
    "json_parse", "json_stringify", "json_array", "json_object", "json_null",
    "base64_encode", "base64_decode", "log", "uuid4", "now_rfc3339", "now_unix_ms", "_ENV",
})
"""Globals a handler or code source can read at run time (semantics.md#lua-globals, DSL-70)."""

HANDLER_MESSAGE = "`{name}` is not defined in the Lua handler environment"
SOURCE_MESSAGE = "`{name}` is not defined in the Lua code source environment"

KEYWORDS = frozenset({
    "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
    "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while",
})
_BINARY = frozenset({
    "+", "-", "*", "/", "//", "%", "^", "..", "==", "~=", "<", "<=", ">", ">=", "and", "or",
    "&", "|", "~", "<<", ">>",
})
_UNARY = frozenset({"not", "-", "#", "~"})
_BLOCK_END = frozenset({"end", "else", "elseif", "until", "<eof>"})

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(
    r"0[xX](?:[0-9a-fA-F]*\.?[0-9a-fA-F]*)(?:[pP][+-]?[0-9]+)?"
    r"|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
)
_OPERATORS = ("...", "..", "==", "~=", "<=", ">=", "<<", ">>", "//", "::")
_LONG_OPEN = re.compile(r"\[(=*)\[")


class ParseError(Exception):
    """The analyser gave up (the source is not Lua it understands)."""


@attrs.define(slots=True)
class Token:
    """One lexical token with its position (1-based line and column)."""

    kind: str  # name | keyword | number | string | op | eof
    value: str
    line: int
    column: int


def tokenize(source: str) -> list[Token]:
    """Split Lua source into tokens; ``ParseError`` for what the analyser does not read."""
    tokens: list[Token] = []
    i, line, line_start = 0, 1, 0
    n = len(source)

    def newlines(start: int, end: int) -> None:
        nonlocal line, line_start
        chunk = source[start:end]
        count = chunk.count("\n")
        if count:
            line += count
            line_start = start + chunk.rindex("\n") + 1

    while i < n:
        c = source[i]
        if c == "\n":
            line += 1
            i += 1
            line_start = i
            continue
        if c in " \t\r\f\v":
            i += 1
            continue
        column = i - line_start + 1
        if source.startswith("--", i):
            long = _LONG_OPEN.match(source, i + 2)
            if long:
                close = "]" + long.group(1) + "]"
                end = source.find(close, long.end())
                if end < 0:
                    raise ParseError("unfinished long comment")
                newlines(i, end)
                i = end + len(close)
            else:
                end = source.find("\n", i)
                i = n if end < 0 else end
            continue
        if c == "[":
            long = _LONG_OPEN.match(source, i)
            if long:
                close = "]" + long.group(1) + "]"
                end = source.find(close, long.end())
                if end < 0:
                    raise ParseError("unfinished long string")
                tokens.append(Token("string", "", line, column))
                newlines(i, end)
                i = end + len(close)
                continue
        if c in "\"'":
            j = i + 1
            while j < n and source[j] != c:
                if source[j] == "\\":
                    j += 1
                    if j < n and source[j] == "z":
                        j += 1
                        while j < n and source[j] in " \t\r\n\f\v":
                            j += 1
                        continue
                elif source[j] == "\n":
                    raise ParseError("unfinished string")
                j += 1
            if j >= n:
                raise ParseError("unfinished string")
            tokens.append(Token("string", "", line, column))
            newlines(i, j)
            i = j + 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and source[i + 1].isdigit()):
            match = _NUMBER.match(source, i)
            if not match or match.end() == i:
                raise ParseError("malformed number")
            tokens.append(Token("number", match.group(), line, column))
            i = match.end()
            continue
        if c == "_" or (c.isascii() and c.isalpha()):
            match = _NAME.match(source, i)
            assert match is not None
            word = match.group()
            tokens.append(Token("keyword" if word in KEYWORDS else "name", word, line, column))
            i = match.end()
            continue
        for op in _OPERATORS:
            if source.startswith(op, i):
                tokens.append(Token("op", op, line, column))
                i += len(op)
                break
        else:
            if c in "+-*/%^#&~|<>=(){}[];:,.":
                tokens.append(Token("op", c, line, column))
                i += 1
            else:
                raise ParseError(f"unexpected character {c!r}")
    tokens.append(Token("eof", "<eof>", line, n - line_start + 1))
    return tokens


@attrs.define(slots=True)
class Function:
    """One function body: its depth and line range (Lua's linedefined/lastlinedefined)."""

    id: int
    depth: int
    first_line: int
    last_line: int = 0


@attrs.define(slots=True)
class Read:
    """A name read, with the scope that declares it (``declared_depth`` -1: a global)."""

    name: str
    line: int
    column: int
    declared_depth: int  # function depth of the declaring scope; -1 = global
    functions: tuple[int, ...]  # ids of the enclosing functions, outermost first


@attrs.define(slots=True)
class Assignment:
    """An assignment to a name no local declares (a global it defines)."""

    name: str
    functions: tuple[int, ...]


class _Parser:
    def __init__(self, source: str) -> None:
        self.tokens = tokenize(source)
        self.pos = 0
        self.scopes: list[tuple[set[str], int]] = []
        self.stack: list[Function] = []
        self.functions: list[Function] = []
        self.reads: list[Read] = []
        self.assignments: list[Assignment] = []

    # -- token helpers ---------------------------------------------------
    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def check(self, value: str) -> bool:
        tok = self.tok
        return tok.value == value and tok.kind in ("op", "keyword", "eof")

    def accept(self, value: str) -> bool:
        if self.check(value):
            self.pos += 1
            return True
        return False

    def expect(self, value: str) -> Token:
        if not self.check(value):
            raise ParseError(f"expected {value!r} near {self.tok.value!r}")
        tok = self.tok
        self.pos += 1
        return tok

    def name(self) -> Token:
        tok = self.tok
        if tok.kind != "name":
            raise ParseError(f"expected a name near {tok.value!r}")
        self.pos += 1
        return tok

    # -- scopes ----------------------------------------------------------
    def open_scope(self) -> None:
        self.scopes.append((set(), len(self.stack) - 1))

    def close_scope(self) -> None:
        self.scopes.pop()

    def declare(self, name: str) -> None:
        self.scopes[-1][0].add(name)

    def resolve(self, name: str) -> int:
        for names, depth in reversed(self.scopes):
            if name in names:
                return depth
        return -1

    def read(self, tok: Token) -> None:
        self.reads.append(Read(tok.value, tok.line, tok.column, self.resolve(tok.value),
                               tuple(f.id for f in self.stack)))

    def assign(self, tok: Token) -> None:
        if self.resolve(tok.value) < 0:
            self.assignments.append(Assignment(tok.value, tuple(f.id for f in self.stack)))

    # -- grammar ---------------------------------------------------------
    def chunk(self) -> None:
        main = Function(id=0, depth=0, first_line=0)
        self.functions.append(main)
        self.stack.append(main)
        self.open_scope()
        self.block()
        if self.tok.kind != "eof":
            raise ParseError(f"unexpected {self.tok.value!r}")
        main.last_line = self.tok.line

    def block(self) -> None:
        while not (self.tok.kind in ("keyword", "eof") and self.tok.value in _BLOCK_END):
            if self.check("return"):
                self.pos += 1
                if not (self.tok.value in _BLOCK_END or self.check(";")):
                    self.explist()
                self.accept(";")
                return
            self.statement()

    def statement(self) -> None:
        tok = self.tok
        if self.accept(";") or self.accept("break"):
            return
        if self.accept("::"):
            self.name()
            self.expect("::")
        elif self.accept("goto"):
            self.name()
        elif self.accept("do"):
            self.scoped_block()
            self.expect("end")
        elif self.accept("while"):
            self.expr()
            self.expect("do")
            self.scoped_block()
            self.expect("end")
        elif self.accept("repeat"):
            self.open_scope()
            self.block()
            self.expect("until")
            self.expr()
            self.close_scope()
        elif self.accept("if"):
            self.expr()
            self.expect("then")
            self.scoped_block()
            while self.accept("elseif"):
                self.expr()
                self.expect("then")
                self.scoped_block()
            if self.accept("else"):
                self.scoped_block()
            self.expect("end")
        elif self.accept("for"):
            self.for_statement()
        elif self.accept("function"):
            first = self.name()
            method = False
            if self.check(".") or self.check(":"):
                self.read(first)
                while self.accept("."):
                    self.name()
                if self.accept(":"):
                    self.name()
                    method = True
            else:
                self.assign(first)
            self.funcbody(tok.line, method=method)
        elif self.accept("local"):
            if self.accept("function"):
                name = self.name()
                self.declare(name.value)
                self.funcbody()
            else:
                names = [self.name().value]
                self.attrib()
                while self.accept(","):
                    names.append(self.name().value)
                    self.attrib()
                if self.accept("="):
                    self.explist()
                for declared in names:
                    self.declare(declared)
        else:
            self.expression_statement()

    def attrib(self) -> None:
        if self.accept("<"):
            self.name()
            self.expect(">")

    def scoped_block(self, names: Iterable[str] = ()) -> None:
        self.open_scope()
        for name in names:
            self.declare(name)
        self.block()
        self.close_scope()

    def for_statement(self) -> None:
        names = [self.name().value]
        if self.accept("="):
            self.expr()
            self.expect(",")
            self.expr()
            if self.accept(","):
                self.expr()
        else:
            while self.accept(","):
                names.append(self.name().value)
            self.expect("in")
            self.explist()
        self.expect("do")
        self.scoped_block(names)
        self.expect("end")

    def expression_statement(self) -> None:
        target = self.suffixed(statement=True)
        if self.check("=") or self.check(","):
            targets = [target]
            while self.accept(","):
                targets.append(self.suffixed(statement=True))
            self.expect("=")
            self.explist()
            for bare in targets:
                if bare is not None:
                    self.assign(bare)
        elif target is not None:
            raise ParseError("syntax error near a bare name")

    def funcbody(self, line: int | None = None, *, method: bool = False) -> None:
        # Lua's linedefined: the `function` keyword of a statement, else the `(`.
        first = self.tok.line if line is None else line
        function = Function(id=len(self.functions), depth=len(self.stack), first_line=first)
        self.functions.append(function)
        self.stack.append(function)
        self.open_scope()
        if method:
            self.declare("self")
        self.expect("(")
        if not self.check(")"):
            while True:
                if self.accept("..."):
                    break
                self.declare(self.name().value)
                if not self.accept(","):
                    break
        self.expect(")")
        self.block()
        function.last_line = self.expect("end").line
        self.close_scope()
        self.stack.pop()

    def explist(self) -> None:
        self.expr()
        while self.accept(","):
            self.expr()

    def expr(self) -> None:
        while self.tok.value in _UNARY and self.tok.kind in ("op", "keyword"):
            self.pos += 1
        self.simple()
        while self.tok.value in _BINARY and self.tok.kind in ("op", "keyword"):
            self.pos += 1
            while self.tok.value in _UNARY and self.tok.kind in ("op", "keyword"):
                self.pos += 1
            self.simple()

    def simple(self) -> None:
        tok = self.tok
        if tok.kind in ("number", "string") or (
            tok.kind == "keyword" and tok.value in ("nil", "true", "false")
        ) or self.check("..."):
            self.pos += 1
        elif self.accept("function"):
            self.funcbody()
        elif self.check("{"):
            self.table()
        else:
            self.suffixed(statement=False)

    def table(self) -> None:
        self.expect("{")
        while not self.check("}"):
            if self.accept("["):
                self.expr()
                self.expect("]")
                self.expect("=")
                self.expr()
            elif self.tok.kind == "name" and self.tokens[self.pos + 1].value == "=" \
                    and self.tokens[self.pos + 1].kind == "op":
                self.pos += 2
                self.expr()
            else:
                self.expr()
            if not (self.accept(",") or self.accept(";")):
                break
        self.expect("}")

    def suffixed(self, *, statement: bool) -> Token | None:
        """Parse a suffixed expression; returns the name token of a bare-name target."""
        tok = self.tok
        bare: Token | None = None
        if tok.kind == "name":
            self.pos += 1
            bare = tok
        elif self.accept("("):
            self.expr()
            self.expect(")")
        else:
            raise ParseError(f"unexpected {tok.value!r}")
        while True:
            suffix = any(self.check(op) for op in (".", "[", ":", "(", "{"))
            if bare is not None and (suffix or self.tok.kind == "string"):
                self.read(bare)
                bare = None
            if self.accept("."):
                self.name()
            elif self.accept("["):
                self.expr()
                self.expect("]")
            elif self.accept(":"):
                self.name()
                self.call_args()
            elif self.check("(") or self.check("{") or self.tok.kind == "string":
                self.call_args()
            else:
                break
        if bare is not None and not statement:
            self.read(bare)
            return None
        return bare

    def call_args(self) -> None:
        if self.tok.kind == "string":
            self.pos += 1
        elif self.check("{"):
            self.table()
        else:
            self.expect("(")
            if not self.check(")"):
                self.explist()
            self.expect(")")


def _parse(source: str) -> _Parser | None:
    try:
        parser = _Parser(source)
        parser.chunk()
    except (ParseError, IndexError):
        return None
    return parser


def _undefined(parser: _Parser, function: Function) -> list[Read]:
    assigned = {a.name for a in parser.assignments if function.id in a.functions}
    return [
        read for read in parser.reads
        if function.id in read.functions
        and read.declared_depth < function.depth
        and read.name not in RUNTIME_GLOBALS
        and read.name not in assigned
    ]


def analyze_handlers(source: str, ranges: Iterable[tuple[int, int]]) -> list[Diagnostic]:
    """Warnings for serialized handlers, located by their ``(first, last)`` lines."""
    wanted = set(ranges)
    if not wanted:
        return []
    parser = _parse(source)
    if parser is None:
        return []
    found: dict[tuple[int, int], Diagnostic] = {}
    for function in parser.functions[1:]:
        if (function.first_line, function.last_line) not in wanted:
            continue
        for read in _undefined(parser, function):
            key = (read.line, read.column)
            found.setdefault(key, Diagnostic(
                code="undefined_global", message=HANDLER_MESSAGE.format(name=read.name),
                line=read.line, column=read.column,
            ))
    return [found[key] for key in sorted(found)]


def analyze_code_source(source: str, step: str) -> list[Diagnostic]:
    """Warnings for a string ``code`` source, in coordinates of the source itself."""
    shift = 0
    parser = _parse(source)
    if parser is None:
        parser = _parse("return " + source)
        shift = len("return ")
        if parser is None:
            return []
    found: dict[tuple[int, int], Diagnostic] = {}
    for read in _undefined(parser, parser.functions[0]):
        column = read.column - shift if read.line == 1 else read.column
        found.setdefault((read.line, column), Diagnostic(
            code="undefined_global", message=SOURCE_MESSAGE.format(name=read.name),
            line=read.line, column=column, step=step,
        ))
    return [found[key] for key in sorted(found)]
