"""Line numbers for TOML key paths.

tomllib parses TOML into plain dicts and lists and forgets where anything
was written. The loader wants to say "farm.toml:42: backends.app.balance:
...", so this module re-scans the same text with a small, forgiving lexer
and records, for every key path, the 1-based line where it first appears.

Paths are tuples: str elements are keys, int elements are indices into an
array (arrays of tables and inline arrays alike), e.g.
("backends", "app", "servers", 0, "address").

The scanner assumes the text is valid TOML (the loader only uses it after
tomllib accepted the text); on invalid input it never raises, it skips to
the next line and keeps going, so the result is merely incomplete.
"""

from __future__ import annotations

import bisect
import re

__all__ = ["locate", "line_of"]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_WS = re.compile(r"[ \t]*")
# Whitespace, newlines and comments: what may separate array elements.
_WS_NL_COMMENTS = re.compile(r"(?:[ \t\r\n]+|#[^\n]*)*")
_BASIC_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_LITERAL_STRING = re.compile(r"'[^'\n]*'")
# A bare value (number, bool, date-time) ends at a separator or a comment.
_SCALAR = re.compile(r"[^,\]}\r\n#]*")
_ESCAPE = re.compile(r'\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|x([0-9A-Fa-f]{2})|(.))')
_SIMPLE_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r",
                   '"': '"', "\\": "\\", "e": "\x1b"}


class _Bad(Exception):
    """The text at the cursor is not TOML we understand; skip the line."""


def _unescape(body: str) -> str:
    """Decode the escapes of a TOML basic string body (without quotes)."""
    def repl(m: re.Match) -> str:
        hexa = m.group(1) or m.group(2) or m.group(3)
        if hexa:
            return chr(int(hexa, 16))
        return _SIMPLE_ESCAPES.get(m.group(4), m.group(4))
    return _ESCAPE.sub(repl, body)


class _Scanner:
    """One pass over the text; fills self.pos with path -> line."""

    def __init__(self, text: str) -> None:
        self.s = text
        self.n = len(text)
        self.i = 0
        self.pos: dict[tuple, int] = {}
        # Resolved path of each array of tables -> index of its last element,
        # so that [[a.b]] after [[a]] lands in the last element of a.
        self.aot: dict[tuple, int] = {}
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    # -- low level ---------------------------------------------------------

    def line(self, i: int) -> int:
        return bisect.bisect_right(self.line_starts, i)

    def peek(self) -> str:
        return self.s[self.i] if self.i < self.n else ""

    def skip(self, pattern: re.Pattern) -> None:
        self.i = pattern.match(self.s, self.i).end()

    def expect(self, token: str) -> None:
        if not self.s.startswith(token, self.i):
            raise _Bad
        self.i += len(token)

    def record(self, path: tuple, line: int) -> None:
        # First appearance wins: an implied table keeps the line of the
        # header that first mentioned it.
        self.pos.setdefault(path, line)

    # -- top level ---------------------------------------------------------

    def run(self) -> dict[tuple, int]:
        table: tuple = ()
        while True:
            self.skip(_WS_NL_COMMENTS)
            if self.i >= self.n:
                return self.pos
            try:
                if self.peek() == "[":
                    table = self.header()
                else:
                    self.keyval(table)
            except _Bad:
                pass
            # A statement owns the rest of its (last) line: only a comment
            # may follow it. After an error this also resynchronises.
            nl = self.s.find("\n", self.i)
            self.i = self.n if nl < 0 else nl + 1

    def header(self) -> tuple:
        """Parse [a.b] or [[a.b]]; return the path of the new current table."""
        line = self.line(self.i)
        is_array = self.s.startswith("[[", self.i)
        self.i += 2 if is_array else 1
        keys = self.key()
        self.expect("]]" if is_array else "]")
        if not is_array:
            return self.resolve(keys, line)
        array = self.resolve(keys[:-1], line) + (keys[-1],)
        self.record(array, line)
        index = self.aot.get(array, -1) + 1
        self.aot[array] = index
        table = array + (index,)
        self.record(table, line)
        return table

    def resolve(self, keys: list[str], line: int) -> tuple:
        """Header keys -> path, stepping into the last element of arrays."""
        path: tuple = ()
        for k in keys:
            path += (k,)
            self.record(path, line)
            if path in self.aot:
                path += (self.aot[path],)
        return path

    def keyval(self, table: tuple) -> None:
        line = self.line(self.i)
        path = table
        for k in self.key():
            path += (k,)
            self.record(path, line)
        self.skip(_WS)
        self.expect("=")
        self.skip(_WS)
        self.value(path)

    # -- keys and values ---------------------------------------------------

    def key(self) -> list[str]:
        """A dotted key with optional whitespace around the dots."""
        parts = []
        while True:
            self.skip(_WS)
            parts.append(self.key_part())
            self.skip(_WS)
            if self.peek() != ".":
                return parts
            self.i += 1

    def key_part(self) -> str:
        c = self.peek()
        pattern = _BASIC_STRING if c == '"' else _LITERAL_STRING if c == "'" else _BARE_KEY
        m = pattern.match(self.s, self.i)
        if not m:
            raise _Bad
        self.i = m.end()
        text = m.group()
        if c == '"':
            return _unescape(text[1:-1])
        if c == "'":
            return text[1:-1]
        return text

    def value(self, path: tuple) -> None:
        c = self.peek()
        if c == '"' or c == "'":
            self.string(c)
        elif c == "[":
            self.array(path)
        elif c == "{":
            self.inline_table(path)
        else:
            self.skip(_SCALAR)

    def string(self, quote: str) -> None:
        triple = quote * 3
        if not self.s.startswith(triple, self.i):
            m = (_BASIC_STRING if quote == '"' else _LITERAL_STRING).match(self.s, self.i)
            if not m:
                raise _Bad
            self.i = m.end()
            return
        j = self.i + 3
        while True:
            end = self.s.find(triple, j)
            if end < 0:
                self.i = self.n
                raise _Bad
            if quote == '"':
                # A backslash escapes the next character, even a quote.
                bs = self.s.find("\\", j, end)
                if bs >= 0:
                    j = bs + 2
                    continue
            # Up to two more quotes belong to the content ("""a"""" ends in a").
            end += 3
            for _ in range(2):
                if end < self.n and self.s[end] == quote:
                    end += 1
            self.i = end
            return

    def array(self, path: tuple) -> None:
        self.i += 1
        index = 0
        while True:
            self.skip(_WS_NL_COMMENTS)
            if self.peek() == "]":
                self.i += 1
                return
            element = path + (index,)
            self.record(element, self.line(self.i))
            self.value(element)
            index += 1
            self.skip(_WS_NL_COMMENTS)
            c = self.peek()
            if c == ",":
                self.i += 1
            elif c == "]":
                self.i += 1
                return
            else:
                raise _Bad

    def inline_table(self, path: tuple) -> None:
        self.i += 1
        while True:
            # TOML 1.0 keeps inline tables on one line; accepting newlines
            # costs nothing and matches TOML 1.1.
            self.skip(_WS_NL_COMMENTS)
            if self.peek() == "}":
                self.i += 1
                return
            self.keyval(path)
            self.skip(_WS_NL_COMMENTS)
            c = self.peek()
            if c == ",":
                self.i += 1
            elif c == "}":
                self.i += 1
                return
            else:
                raise _Bad


def locate(text: str) -> dict[tuple, int]:
    """Map every key path defined in TOML `text` to its 1-based line.

    Accepts any str (valid TOML gives a complete map; invalid TOML gives a
    partial one and never raises). Tables implied by a dotted header or a
    dotted key map to the line where they first appear; an array of tables
    maps to its first [[header]], and each element (path + (index,)) to its
    own header. Elements of inline arrays are indexed the same way.
    """
    scanner = _Scanner(text)
    try:
        return scanner.run()
    except RecursionError:     # absurd nesting (the loader refuses it first)
        return scanner.pos


def line_of(positions: dict[tuple, int], path: tuple | list) -> int:
    """The line of `path`, or of its nearest known ancestor; 0 if none."""
    path = tuple(path)
    for n in range(len(path), 0, -1):
        line = positions.get(path[:n])
        if line is not None:
            return line
    return 0
