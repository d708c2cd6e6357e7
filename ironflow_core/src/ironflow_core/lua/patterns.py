"""Lua 5.4 patterns in Python, and a worst-case cost estimate for the C matcher.

Lua's C matcher backtracks without ever calling the instruction hook, so a
pattern such as ``.-.-.-b`` on a few thousand characters would run for hours.
The sandbox asks :func:`pattern_degree` how expensive a pattern can get; cheap
calls go to C, expensive ones to :class:`Matcher`, a faithful port of
``lstrlib.c`` that charges all of its work in steps and calls a ``check``
callback every few thousand, so the time limit and cancellation still apply
to any pattern, however built: a ``[...]`` class is read once per pattern
position (end and a 256-entry membership table, both charged), and copies and
compares of long slices are charged by size. Patterns longer than
:data:`MAX_ESTIMATE_BYTES` are not estimated; they go to the Python matcher.
"""

from __future__ import annotations

import re
from collections.abc import Callable

L_ESC = 0x25  # '%'
SPECIALS = frozenset(b"^$*+?.([%-")
_SPECIAL = re.compile(rb"[\^$*+?.(\[%-]")
_BRACKET_BODY = re.compile(rb"(?:%.|.)(?:%.|[^\]%])*\]", re.DOTALL)
"""What follows ``[`` (and an optional ``^``) up to the closing ``]``, as ``classEnd`` reads it."""
SCAN_SHIFT = 6
"""Bytes scanned at C speed (slices, memcmp, regex) per step charged."""
MAXCCALLS = 200
MAX_CAPTURES = 32
CAP_UNFINISHED = -1
CAP_POSITION = -2
RESERVE_STEP = 1 << 20
"""Replacement results larger than this are checked against the memory limit while built."""
CHECK_EVERY = 2048
"""Steps (about one Python-level operation each) between two calls of ``check``."""


def has_specials(pattern: bytes) -> bool:
    """Whether ``string.find`` would treat ``pattern`` as a pattern (not plain text)."""
    return _SPECIAL.search(pattern) is not None


class PatternError(Exception):
    """A pattern or replacement error, worded like Lua's own."""


def _ctype_table(pred: Callable[[int], bool]) -> bytes:
    return bytes(1 if pred(c) else 0 for c in range(256))


def _isalpha(c: int) -> bool:
    return 65 <= c <= 90 or 97 <= c <= 122


def _isdigit(c: int) -> bool:
    return 48 <= c <= 57


def _ispunct(c: int) -> bool:
    return 33 <= c <= 126 and not _isalpha(c) and not _isdigit(c)


# The C locale: ASCII-only character classes (Lua calls <ctype.h>).
_CLASSES: dict[int, bytes] = {
    ord("a"): _ctype_table(_isalpha),
    ord("c"): _ctype_table(lambda c: c < 32 or c == 127),
    ord("d"): _ctype_table(_isdigit),
    ord("g"): _ctype_table(lambda c: 33 <= c <= 126),
    ord("l"): _ctype_table(lambda c: 97 <= c <= 122),
    ord("p"): _ctype_table(_ispunct),
    ord("s"): _ctype_table(lambda c: c == 32 or 9 <= c <= 13),
    ord("u"): _ctype_table(lambda c: 65 <= c <= 90),
    ord("w"): _ctype_table(lambda c: _isalpha(c) or _isdigit(c)),
    ord("x"): _ctype_table(lambda c: _isdigit(c) or 97 <= c <= 102 or 65 <= c <= 70),
}


def _match_class(c: int, cl: int) -> bool:
    lower = cl | 0x20 if 65 <= cl <= 90 else cl
    table = _CLASSES.get(lower)
    if table is None:
        return cl == c
    res = bool(table[c])
    if 65 <= cl <= 90:
        res = not res
    return res


_MASKS: dict[int, int] = {}


def _class_mask(cl: int) -> int:
    """The bytes ``%<cl>`` matches, as a 256-bit mask."""
    mask = _MASKS.get(cl)
    if mask is None:
        mask = 0
        for c in range(256):
            if _match_class(c, cl):
                mask |= 1 << c
        _MASKS[cl] = mask
    return mask


class Matcher:
    """One subject and one pattern, matched exactly like ``lstrlib.c``.

    Positions are 0-based offsets into ``src``. ``check`` is called every
    :data:`CHECK_EVERY` steps and aborts the match by raising.
    """

    __slots__ = (
        "cap_init",
        "cap_len",
        "check",
        "ends",
        "level",
        "matchdepth",
        "next_check",
        "pat",
        "plen",
        "sets",
        "slen",
        "src",
        "steps",
    )

    def __init__(self, src: bytes, pat: bytes, check: Callable[[], None]) -> None:
        self.src = src
        self.slen = len(src)
        self.pat = pat
        self.plen = len(pat)
        self.check = check
        self.level = 0
        self.cap_init = [0] * MAX_CAPTURES
        self.cap_len = [0] * MAX_CAPTURES
        self.matchdepth = MAXCCALLS
        self.steps = 0
        self.next_check = CHECK_EVERY
        self.ends: dict[int, int] = {}
        """``classEnd`` per pattern position: a long ``[...]`` class is scanned once."""
        self.sets: dict[int, bytes] = {}
        """Per ``[...]`` position: a 256-entry membership table, so a test costs O(1)."""

    # -- helpers --------------------------------------------------------
    def _pc(self, i: int) -> int:
        return self.pat[i] if i < self.plen else 0

    def _sc(self, i: int) -> int:
        return self.src[i] if i < self.slen else 0

    def _class_end(self, p: int) -> int:
        end = self.ends.get(p)
        if end is None:
            end = self.ends[p] = self._find_class_end(p)
        return end

    def _find_class_end(self, p: int) -> int:
        c = self._pc(p)
        p += 1
        if c == L_ESC:
            if p >= self.plen:
                raise PatternError("malformed pattern (ends with '%')")
            return p + 1
        if c == 0x5B:  # '['
            if self._pc(p) == 0x5E:  # '^'
                p += 1
            found = _BRACKET_BODY.match(self.pat, p)
            if found is None:
                self.tick((self.plen - p) >> SCAN_SHIFT)
                raise PatternError("malformed pattern (missing ']')")
            end = found.end()
            self.tick((end - p) >> SCAN_SHIFT)
            return end
        return p

    def _match_bracket(self, c: int, p: int, ec: int) -> bool:
        """Whether ``c`` is in the class ``[...]`` at ``p`` (``ec``: its closing ``]``)."""
        table = self.sets.get(p)
        if table is None:
            table = self.sets[p] = self._bracket_table(p, ec)
        return table[c] == 1

    def _bracket_table(self, p: int, ec: int) -> bytes:
        """``matchbracketclass`` for all 256 bytes at once; each class item is one step."""
        mask = 0
        negate = False
        pat = self.pat
        if self._pc(p + 1) == 0x5E:
            negate = True
            p += 1
        p += 1
        while p < ec:
            self.tick()
            ch = pat[p]
            if ch == L_ESC:
                p += 1
                mask |= _class_mask(self._pc(p))
            elif self._pc(p + 1) == 0x2D and p + 2 < ec:  # range a-z
                high = pat[p + 2]
                if ch <= high:
                    mask |= ((1 << (high + 1)) - 1) ^ ((1 << ch) - 1)
                p += 2
            else:
                mask |= 1 << ch
            p += 1
        if negate:
            mask ^= (1 << 256) - 1
        return bytes((mask >> c) & 1 for c in range(256))

    def _single(self, s: int, p: int, ep: int) -> bool:
        if s >= self.slen:
            return False
        c = self.src[s]
        pc = self.pat[p]
        if pc == 0x2E:  # '.'
            return True
        if pc == L_ESC:
            return _match_class(c, self._pc(p + 1))
        if pc == 0x5B:
            return self._match_bracket(c, p, ep - 1)
        return pc == c

    def tick(self, cost: int = 1) -> None:
        """Charge ``cost`` steps of work; ``check`` runs every :data:`CHECK_EVERY` steps."""
        self.steps += cost
        if self.steps >= self.next_check:
            self.next_check = self.steps + CHECK_EVERY
            self.check()

    # -- the matcher ----------------------------------------------------
    def match(self, s: int, p: int) -> int | None:
        """``match``: where the pattern from ``p`` matching at ``s`` ends, or None."""
        if self.matchdepth == 0:
            raise PatternError("pattern too complex")
        self.matchdepth -= 1
        try:
            return self._match(s, p)
        finally:
            self.matchdepth += 1

    def _match(self, s: int, p: int) -> int | None:
        pat = self.pat
        plen = self.plen
        while True:
            self.tick()
            if p == plen:
                return s
            c = pat[p]
            if c == 0x28:  # '('
                if self._pc(p + 1) == 0x29:
                    return self._start_capture(s, p + 2, CAP_POSITION)
                return self._start_capture(s, p + 1, CAP_UNFINISHED)
            if c == 0x29:  # ')'
                return self._end_capture(s, p + 1)
            if c == 0x24 and p + 1 == plen:  # '$' at the end
                return s if s == self.slen else None
            if c == L_ESC:
                nxt = self._pc(p + 1)
                if nxt == 0x62:  # %b
                    s2 = self._match_balance(s, p + 2)
                    if s2 is None:
                        return None
                    s, p = s2, p + 4
                    continue
                if nxt == 0x66:  # %f
                    p += 2
                    if self._pc(p) != 0x5B:
                        raise PatternError("missing '[' after '%f' in pattern")
                    ep = self._class_end(p)
                    previous = 0 if s == 0 else self.src[s - 1]
                    if not self._match_bracket(previous, p, ep - 1) and self._match_bracket(
                        self._sc(s), p, ep - 1
                    ):
                        p = ep
                        continue
                    return None
                if 0x30 <= nxt <= 0x39:  # %0-%9
                    s2 = self._match_capture(s, nxt)
                    if s2 is None:
                        return None
                    s, p = s2, p + 2
                    continue
            # default: a single character class plus an optional suffix
            ep = self._class_end(p)
            suffix = self._pc(ep)
            if not self._single(s, p, ep):
                if suffix in (0x2A, 0x3F, 0x2D):  # '*' '?' '-' accept empty
                    p = ep + 1
                    continue
                return None
            if suffix == 0x3F:  # '?'
                res = self.match(s + 1, ep + 1)
                if res is not None:
                    return res
                p = ep + 1
                continue
            if suffix == 0x2B:  # '+'
                return self._max_expand(s + 1, p, ep)
            if suffix == 0x2A:  # '*'
                return self._max_expand(s, p, ep)
            if suffix == 0x2D:  # '-'
                return self._min_expand(s, p, ep)
            s, p = s + 1, ep

    def _max_expand(self, s: int, p: int, ep: int) -> int | None:
        i = 0
        while self._single(s + i, p, ep):
            i += 1
            self.tick()
        while i >= 0:
            res = self.match(s + i, ep + 1)
            if res is not None:
                return res
            i -= 1
        return None

    def _min_expand(self, s: int, p: int, ep: int) -> int | None:
        while True:
            res = self.match(s, ep + 1)
            if res is not None:
                return res
            if self._single(s, p, ep):
                s += 1
            else:
                return None

    def _start_capture(self, s: int, p: int, what: int) -> int | None:
        level = self.level
        if level >= MAX_CAPTURES:
            raise PatternError("too many captures")
        self.cap_init[level] = s
        self.cap_len[level] = what
        self.level = level + 1
        res = self.match(s, p)
        if res is None:
            self.level -= 1
        return res

    def _end_capture(self, s: int, p: int) -> int | None:
        level = self.level - 1
        while level >= 0 and self.cap_len[level] != CAP_UNFINISHED:
            level -= 1
        if level < 0:
            raise PatternError("invalid pattern capture")
        self.cap_len[level] = s - self.cap_init[level]
        res = self.match(s, p)
        if res is None:
            self.cap_len[level] = CAP_UNFINISHED
        return res

    def _match_balance(self, s: int, p: int) -> int | None:
        if p >= self.plen - 1:
            raise PatternError("malformed pattern (missing arguments to '%b')")
        if self._sc(s) != self.pat[p] or s >= self.slen:
            return None
        b, e = self.pat[p], self.pat[p + 1]
        cont = 1
        s += 1
        src, slen = self.src, self.slen
        while s < slen:
            ch = src[s]
            if ch == e:
                cont -= 1
                if cont == 0:
                    return s + 1
            elif ch == b:
                cont += 1
            s += 1
            self.tick()
        return None

    def _match_capture(self, s: int, digit: int) -> int | None:
        index = digit - 0x31
        if index < 0 or index >= self.level or self.cap_len[index] == CAP_UNFINISHED:
            raise PatternError(f"invalid capture index %{index + 1}")
        length = self.cap_len[index]
        if length < 0:  # a position capture never matches text
            return None
        start = self.cap_init[index]
        self.tick(length >> SCAN_SHIFT)
        if self.slen - s >= length and self.src[start:start + length] == self.src[s:s + length]:
            return s + length
        return None

    # -- results --------------------------------------------------------
    def reset(self) -> None:
        """Forget the captures of the last attempt (before matching at a new position)."""
        self.level = 0
        self.matchdepth = MAXCCALLS

    def capture(self, i: int, s: int, e: int) -> bytes | int:
        """``get_onecapture``: capture ``i`` (0-based), or the whole match."""
        if i >= self.level:
            if i != 0:
                raise PatternError(f"invalid capture index %{i + 1}")
            return self.src[s:e]
        length = self.cap_len[i]
        start = self.cap_init[i]
        if length == CAP_UNFINISHED:
            raise PatternError("unfinished capture")
        if length == CAP_POSITION:
            return start + 1
        return self.src[start:start + length]

    def captures(self, s: int, e: int, *, whole: bool) -> list[bytes | int]:
        """``push_captures``: explicit captures, or the whole match when ``whole``."""
        count = 1 if self.level == 0 and whole else self.level
        return [self.capture(i, s, e) for i in range(count)]

    def search(self, start: int, *, anchor: bool, lastmatch: int = -1,
               p: int = 0) -> tuple[int, int] | None:
        """First position >= ``start`` where the pattern matches (``e != lastmatch``)."""
        s = start
        while True:
            self.reset()
            e = self.match(s, p)
            if e is not None and e != lastmatch:
                return s, e
            s += 1
            if anchor or s > self.slen:
                return None


def expand_replacement(m: Matcher, repl: bytes, s: int, e: int,
                       reserve: Callable[[int], None] | None = None) -> bytes:
    """``add_s``: a gsub replacement string with ``%0``-``%9`` and ``%%``.

    Every piece is charged to the matcher; ``reserve`` is told the size of the
    result before it is built (a few bytes of ``repl`` can copy a long match).
    """
    pieces: list[bytes] = []
    size = 0
    i = 0
    n = len(repl)
    while i < n:
        m.tick()
        j = repl.find(b"%", i)
        if j < 0:
            pieces.append(repl[i:])
            size += n - i
            break
        pieces.append(repl[i:j])
        nxt = repl[j + 1] if j + 1 < n else 0
        if nxt == L_ESC:
            piece: bytes = b"%"
        elif nxt == 0x30:
            piece = m.src[s:e]
        elif 0x31 <= nxt <= 0x39:
            value = m.capture(nxt - 0x31, s, e)
            piece = str(value).encode() if isinstance(value, int) else value
        else:
            raise PatternError("invalid use of '%' in replacement string")
        pieces.append(piece)
        size += j - i + len(piece)
        if reserve is not None and size > RESERVE_STEP:
            reserve(size)
        i = j + 2
    if reserve is not None:
        reserve(size)
    m.tick(size >> SCAN_SHIFT)
    return b"".join(pieces)


# -- cost estimate --------------------------------------------------------

MAX_ESTIMATE_BYTES = 16 * 1024
"""Longer patterns are not estimated (that would cost time nobody charges): they
go to the Python matcher, which charges all of its work."""

_OPEN, _CLOSE, _POSITION, _END, _BALANCE, _FRONTIER, _BACKREF, _SINGLE = range(8)


def _items(pat: bytes) -> list[tuple[int, int]]:
    """Split a pattern into (kind, quantifier) items; raises PatternError."""
    m = Matcher(b"", pat, lambda: None)
    items: list[tuple[int, int]] = []
    p, plen = 0, len(pat)
    while p < plen:
        c = pat[p]
        if c == 0x28:
            if m._pc(p + 1) == 0x29:
                items.append((_POSITION, 0))
                p += 2
            else:
                items.append((_OPEN, 0))
                p += 1
            continue
        if c == 0x29:
            items.append((_CLOSE, 0))
            p += 1
            continue
        if c == 0x24 and p + 1 == plen:
            items.append((_END, 0))
            p += 1
            continue
        if c == L_ESC:
            nxt = m._pc(p + 1)
            if nxt == 0x62:
                if p + 3 >= plen:
                    raise PatternError("malformed pattern (missing arguments to '%b')")
                items.append((_BALANCE, 0))
                p += 4
                continue
            if nxt == 0x66:
                if m._pc(p + 2) != 0x5B:
                    raise PatternError("missing '[' after '%f' in pattern")
                p = m._class_end(p + 2)
                items.append((_FRONTIER, 0))
                continue
            if 0x30 <= nxt <= 0x39:
                items.append((_BACKREF, 0))
                p += 2
                continue
        ep = m._class_end(p)
        quant = m._pc(ep)
        if quant in (0x2A, 0x2B, 0x2D, 0x3F):
            items.append((_SINGLE, quant))
            p = ep + 1
        else:
            items.append((_SINGLE, 0))
            p = ep
    return items


def _suffix_costs(items: list[tuple[int, int]]) -> tuple[list[int], list[bool], int]:
    """Per suffix: polynomial degree of the worst case and whether it can fail."""
    n = len(items)
    degree = [0] * (n + 1)
    canfail = [False] * (n + 1)
    optional = 0
    for i in range(n - 1, -1, -1):
        kind, quant = items[i]
        d, cf = degree[i + 1], canfail[i + 1]
        if kind in (_OPEN, _CLOSE, _POSITION):
            pass
        elif kind == _END:
            d, cf = 0, True
        elif kind in (_BALANCE, _BACKREF):
            d, cf = max(1, d), True
        elif kind == _FRONTIER or quant == 0:
            cf = True
        elif quant == 0x3F:  # '?'
            optional += 1
        elif quant in (0x2A, 0x2B):  # '*' '+'
            d = 1 + d if cf else max(1, d)
            cf = cf or quant == 0x2B
        else:  # '-'
            d = 1 + d if cf else d
        degree[i], canfail[i] = d, cf
    return degree, canfail, optional


def pattern_degree(pat: bytes, *, gmatch: bool = False) -> tuple[int, int]:
    """Worst-case cost of matching ``pat`` on ``n`` bytes ~ ``(n+1)**d * 2**q``.

    Returns ``(d, q)``; ``d`` is -1 when ``string.find`` would search plainly
    (no special characters), and large when the pattern is malformed so the
    Python matcher reports the error.
    """
    if not gmatch and not has_specials(pat):
        return -1, 0
    if len(pat) > MAX_ESTIMATE_BYTES:
        return 64, 0
    anchored = not gmatch and pat[:1] == b"^"
    body = pat[1:] if anchored else pat
    try:
        items = _items(body)
    except PatternError:
        return 64, 0
    degree, canfail, optional = _suffix_costs(items)
    d = degree[0]
    if anchored:
        return d, optional
    if not canfail[0]:
        return max(1, d), optional
    first = 0
    while first < len(items) and items[first][0] in (_OPEN, _POSITION):
        first += 1
    if first < len(items):
        kind, quant = items[first]
        if kind == _SINGLE and quant in (0, 0x2B) and not canfail[first + 1]:
            # fails in O(1) where the first class does not match: one scan
            return max(1, d), optional
    return d + 1, optional
