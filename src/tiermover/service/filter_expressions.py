"""File filter expressions: the `script` of a task callback of type "filter".

A small, safe language that selects files by their attributes:

    size > 10MB and name ~ "*.txt" and not (path ~ "/tmp/*")
    mtime < "2024-01-01" or uid == 1000
    extension in ["jpg", "png"]

The text is tokenized and parsed here by hand into a tree of closures; nothing is ever
handed to eval/exec or compiled to Python code, so a script can only compare attributes.

Attributes (what `FileFilter.matches` reads from its dict):
    name, path, extension, type   text ("file" or "folder" for type; extension without dot)
    size, uid, gid                integers
    mode                          permission bits (st_mode & 0o7777); write 0o644 or 0644
    mtime, atime, ctime           dates: datetime, or seconds since the epoch
Operators: == (or =) != < <= > >=, ~ and !~ (glob: * ? [...], case-sensitive),
in / not in [list], and, or, not, parentheses. Keywords are case-insensitive.
Literals: numbers (size suffixes B, KB, MB, GB, TB, PB = powers of 1000, KiB ... PiB =
powers of 1024, case-insensitive), "strings" or 'strings', and ISO dates as strings
("2024-01-01", "2024-01-01T10:00:00Z"; no zone means UTC) or epoch seconds.
"""

from __future__ import annotations

import os
import re
import stat as stat_module
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import translate
from typing import Any, Callable

from dateutil.parser import isoparse

from tiermover.service.errors import ValidationFailed

MAX_LENGTH = 4096
MAX_DEPTH = 32

TEXT, INTEGER, DATE = "text", "integer", "date"
ATTRIBUTES = {
    "name": TEXT, "path": TEXT, "extension": TEXT, "type": TEXT,
    "size": INTEGER, "mode": INTEGER, "uid": INTEGER, "gid": INTEGER,
    "mtime": DATE, "atime": DATE, "ctime": DATE,
}
FILE_TYPES = ("file", "folder")
OPERATORS_BY_KIND = {
    TEXT: ("==", "!=", "~", "!~", "in", "not in"),
    INTEGER: ("==", "!=", "<", "<=", ">", ">=", "in", "not in"),
    DATE: ("==", "!=", "<", "<=", ">", ">="),
}
SIZE_UNITS = {
    "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "pb": 10**15,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40, "pib": 2**50,
}
UNIT_NAMES = "B, KB, MB, GB, TB, PB, KiB, MiB, GiB, TiB, PiB"
KEYWORDS = ("and", "or", "not", "in")

Predicate = Callable[[dict], bool]


def _invalid(message: str, position: int | None = None) -> ValidationFailed:
    where = f" at position {position}" if position is not None else ""
    return ValidationFailed.on("script", "invalid", f"is invalid: {message}{where}")


# --- tokens -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Token:
    kind: str  # name | keyword | number | string | op | ( | ) | [ | ] | , | end
    text: str
    position: int  # 1-based column of the first character, for error messages
    value: Any = None
    unit: str = ""  # the size unit written after a number, if any


_NUMBER = re.compile(r"0[oO][0-7]+|0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?|\.\d+")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACED_UNIT = re.compile(r"\s+([A-Za-z]+)\b")
_OPERATORS = ("==", "!=", "<=", ">=", "!~", "<", ">", "~", "=")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "n": "\n", "t": "\t"}


def _number_value(text: str, unit: str, position: int) -> int | float:
    if text[:2].lower() == "0o":
        value: int | float = int(text[2:], 8)
    elif text[:2].lower() == "0x":
        value = int(text[2:], 16)
    elif len(text) > 1 and text[0] == "0" and text.isdigit():
        if not re.fullmatch(r"[0-7]+", text):
            raise _invalid(f"'{text}' starts with 0, so it is octal, but has digits 8 or 9",
                           position)
        value = int(text, 8)  # 0644, as chmod writes modes
    elif "." in text:
        value = float(text)
    else:
        value = int(text)
    if unit:
        factor = SIZE_UNITS.get(unit.lower())
        if factor is None:
            raise _invalid(f"unknown size unit '{unit}' (use {UNIT_NAMES})", position)
        value = value * factor
        value = int(value) if float(value).is_integer() else value
    return value


def _read_unit(text: str, end: int) -> tuple[str, int]:
    """The unit glued to a number (`10MB`, any word: unknown ones are refused), or a known
    unit after spaces (`10 MB`); returns it and where the number token ends."""
    glued = _NAME.match(text, end)
    if glued:
        return glued.group(), glued.end()
    spaced = _SPACED_UNIT.match(text, end)
    if spaced and spaced.group(1).lower() in SIZE_UNITS:
        return spaced.group(1), spaced.end()
    return "", end


def _read_string(text: str, start: int) -> tuple[str, int]:
    quote = text[start]
    out = []
    i = start + 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text) or text[i + 1] not in _ESCAPES:
                raise _invalid("unknown escape in string (use \\\" \\' \\\\ \\n or \\t)", i + 1)
            out.append(_ESCAPES[text[i + 1]])
            i += 2
            continue
        if char == quote:
            return "".join(out), i + 1
        out.append(char)
        i += 1
    raise _invalid("string is not closed", start + 1)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char = text[i]
        position = i + 1
        if char.isspace():
            i += 1
        elif char in "()[],":
            tokens.append(Token(char, char, position))
            i += 1
        elif char in "\"'":
            value, i = _read_string(text, i)
            tokens.append(Token("string", text[position - 1:i], position, value))
        elif char.isdigit() or (char == "." and i + 1 < len(text) and text[i + 1].isdigit()):
            number = _NUMBER.match(text, i)
            end = number.end()
            unit_text, i = _read_unit(text, end)
            value = _number_value(number.group(), unit_text, position)
            tokens.append(Token("number", text[position - 1:i].rstrip(), position, value,
                                unit_text))
        elif _NAME.match(text, i):
            word = _NAME.match(text, i).group()
            kind = "keyword" if word.lower() in KEYWORDS else "name"
            tokens.append(Token(kind, word.lower() if kind == "keyword" else word, position))
            i += len(word)
        else:
            for op in _OPERATORS:
                if text.startswith(op, i):
                    tokens.append(Token("op", "==" if op == "=" else op, position))
                    i += len(op)
                    break
            else:
                raise _invalid(f"unexpected character '{char}'", position)
    tokens.append(Token("end", "end of text", len(text) + 1))
    return tokens


# --- attribute values -------------------------------------------------------------------

def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _attribute_reader(name: str) -> Callable[[dict], Any]:
    """How to read one attribute from a file's dict, normalised for comparison."""
    kind = ATTRIBUTES[name]
    if kind == DATE:
        return lambda attrs: _epoch(attrs.get(name))
    if name == "mode":
        def read_mode(attrs: dict) -> int | None:
            mode = attrs.get("mode")
            return None if mode is None else int(mode) & 0o7777
        return read_mode
    if name == "name":
        return lambda attrs: attrs.get("name", _basename(attrs.get("path")))
    if name == "extension":
        return lambda attrs: attrs.get("extension", _extension(
            attrs.get("name", _basename(attrs.get("path")))))
    return lambda attrs: attrs.get(name)


def _basename(path: str | None) -> str | None:
    return None if path is None else path.rstrip("/").rsplit("/", 1)[-1]


def _extension(name: str | None) -> str | None:
    if name is None:
        return None
    stem, dot, extension = name.rpartition(".")
    return extension if dot and stem else ""


def file_attributes(path: str, info: os.stat_result) -> dict:
    """The attribute dict of a file, from its namespace path and its (l)stat result."""
    name = _basename(path) or ""
    return {
        "name": name, "path": path, "extension": _extension(name),
        "type": "folder" if stat_module.S_ISDIR(info.st_mode) else "file",
        "size": info.st_size, "mode": info.st_mode & 0o7777, "uid": info.st_uid,
        "gid": info.st_gid, "mtime": info.st_mtime, "atime": info.st_atime,
        "ctime": info.st_ctime,
    }


# --- comparisons ------------------------------------------------------------------------

def _literal_for(attribute: str, token: Token, exact: bool = True) -> Any:
    """Check a literal against the attribute's kind; return it in comparable form.

    `exact` is false for glob patterns, which need not be a complete value."""
    kind = ATTRIBUTES[attribute]
    if kind == TEXT:
        if token.kind != "string":
            raise _invalid(f"{attribute} is text: compare it with a \"quoted\" string, "
                           f"not {token.text}", token.position)
        if attribute == "type" and exact and token.value not in FILE_TYPES:
            raise _invalid(f"type is \"file\" or \"folder\", not {token.text}", token.position)
        return token.value
    if kind == INTEGER:
        if token.kind != "number":
            raise _invalid(f"{attribute} is a number, not {token.text}", token.position)
        if token.unit and attribute != "size":
            raise _invalid(f"size units only apply to size, not {attribute}", token.position)
        return token.value
    # DATE: an ISO date string or epoch seconds
    if token.kind == "number":
        return float(token.value)
    if token.kind != "string":
        raise _invalid(f"{attribute} is a date: write it as \"2024-01-01\" or "
                       f"\"2024-01-01T10:00:00Z\"", token.position)
    try:
        moment = isoparse(token.value)
    except (ValueError, OverflowError):
        raise _invalid(f"{token.text} is not an ISO 8601 date such as \"2024-01-01\"",
                       token.position) from None
    return _epoch(moment)


def _glob(pattern: str) -> Callable[[str], bool]:
    matcher = re.compile(translate(pattern), re.DOTALL)
    return lambda value: matcher.match(value) is not None


def _comparison(attribute: str, operator: str, operand: Any) -> Predicate:
    read = _attribute_reader(attribute)
    if operator in ("~", "!~"):
        matches = _glob(operand)
        want = operator == "~"
        return lambda attrs: (value := read(attrs)) is not None and matches(value) == want
    if operator in ("in", "not in"):
        members = frozenset(operand)
        want = operator == "in"
        return lambda attrs: (value := read(attrs)) is not None and (value in members) == want
    compare = {
        "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    }[operator]
    # A missing attribute matches no comparison (like NULL in SQL).
    return lambda attrs: (value := read(attrs)) is not None and compare(value, operand)


# --- parser -----------------------------------------------------------------------------

class _Parser:
    """Recursive descent:  or := and ("or" and)* ;  and := unary ("and" unary)* ;
    unary := "not" unary | "(" or ")" | comparison."""

    def __init__(self, tokens: list[Token]):
        self.tokens = tokens
        self.index = 0
        self.depth = 0

    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def accept_keyword(self, word: str) -> bool:
        if self.current.kind == "keyword" and self.current.text == word:
            self.index += 1
            return True
        return False

    def expect(self, kind: str, what: str) -> Token:
        if self.current.kind != kind:
            raise _invalid(f"expected {what}, found {self.current.text}", self.current.position)
        return self.advance()

    def parse(self) -> Predicate:
        if self.current.kind == "end":
            raise _invalid("the filter is empty", 1)
        predicate = self.parse_or()
        if self.current.kind != "end":
            raise _invalid(f"unexpected {self.current.text} (expected and, or or the end)",
                           self.current.position)
        return predicate

    def nested(self, token: Token):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _invalid(f"nested more than {MAX_DEPTH} levels deep", token.position)

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.accept_keyword("or"):
            parts.append(self.parse_and())
        return parts[0] if len(parts) == 1 else (lambda attrs: any(p(attrs) for p in parts))

    def parse_and(self) -> Predicate:
        parts = [self.parse_unary()]
        while self.accept_keyword("and"):
            parts.append(self.parse_unary())
        return parts[0] if len(parts) == 1 else (lambda attrs: all(p(attrs) for p in parts))

    def parse_unary(self) -> Predicate:
        token = self.current
        if self.accept_keyword("not"):
            self.nested(token)
            inner = self.parse_unary()
            self.depth -= 1
            return lambda attrs: not inner(attrs)
        if token.kind == "(":
            self.advance()
            self.nested(token)
            inner = self.parse_or()
            self.depth -= 1
            self.expect(")", "')'")
            return inner
        return self.parse_comparison()

    def parse_comparison(self) -> Predicate:
        token = self.current
        if token.kind != "name":
            raise _invalid(f"expected an attribute ({', '.join(ATTRIBUTES)}), "
                           f"found {token.text}", token.position)
        attribute = token.text
        if attribute not in ATTRIBUTES:
            raise _invalid(f"unknown attribute '{attribute}' (known: {', '.join(ATTRIBUTES)})",
                           token.position)
        self.advance()
        operator_token = self.current
        if self.accept_keyword("in"):
            operator = "in"
        elif self.accept_keyword("not"):
            if not self.accept_keyword("in"):
                raise _invalid("expected 'in' after 'not'", self.current.position)
            operator = "not in"
        elif operator_token.kind == "op":
            operator = self.advance().text
        else:
            raise _invalid(f"expected an operator after {attribute}, found {operator_token.text}",
                           operator_token.position)
        kind = ATTRIBUTES[attribute]
        if operator not in OPERATORS_BY_KIND[kind]:
            raise _invalid(f"'{operator}' does not apply to {attribute} ({kind}; use "
                           f"{' '.join(OPERATORS_BY_KIND[kind])})", operator_token.position)
        if operator in ("in", "not in"):
            operand: Any = self.parse_list(attribute)
        else:
            operand = _literal_for(attribute, self.expect_value(),
                                   exact=operator not in ("~", "!~"))
        return _comparison(attribute, operator, operand)

    def expect_value(self) -> Token:
        if self.current.kind not in ("number", "string"):
            raise _invalid(f"expected a number or a \"string\", found {self.current.text}",
                           self.current.position)
        return self.advance()

    def parse_list(self, attribute: str) -> list:
        self.expect("[", "'[' to start a list")
        values = []
        if self.current.kind != "]":
            values.append(_literal_for(attribute, self.expect_value()))
            while self.current.kind == ",":
                self.advance()
                values.append(_literal_for(attribute, self.expect_value()))
        self.expect("]", "',' or ']'")
        return values


@dataclass(frozen=True)
class FileFilter:
    """A compiled filter; `matches` decides whether a file (its attribute dict) is selected."""

    text: str
    _predicate: Predicate

    def matches(self, attrs: dict) -> bool:
        return bool(self._predicate(attrs))


def compile_filter(text: Any) -> FileFilter:
    """Parse and check a filter, raising ValidationFailed on `script` when it is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValidationFailed.on("script", "blank")
    if len(text) > MAX_LENGTH:
        raise ValidationFailed.on("script", "too_long", count=MAX_LENGTH)
    return FileFilter(text, _Parser(tokenize(text)).parse())
