"""Layer: pure. SCIM filter and path parser (RFC 7644 §3.4.2.2, §3.5.2, §3.10).

A hand-written tokenizer and recursive-descent parser producing `scim.filter.ast` trees.
Every malformed input raises `InvalidFilter` (filters, sortBy/attributes paths) or
`InvalidPath` (PATCH paths) with a message naming the character position (1-based) and
what was expected; no other exception escapes.

Grammar (precedence: `not` > `and` > `or`; `and`/`or` are associative, so chains are
folded into balanced trees to keep the tree shallow)::

    filter    = or
    or        = and *("or" and)
    and       = unary *("and" unary)
    unary     = "not" "(" filter ")" / "(" filter ")" / attrExp / valuePath
    attrExp   = attrPath "pr" / attrPath compareOp compValue
    valuePath = attrPath "[" valFilter "]" [ "." subAttr (compareOp compValue / "pr") ]

The trailing `.subAttr op value` after a value path is not RFC grammar but is sent by
Microsoft Entra (`emails[type eq "work"].value eq "x"`): it parses as a value path whose
filter also requires the sub-attribute comparison on the SAME element.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal, NoReturn

from scim.errors import InvalidFilter, InvalidPath, ScimError
from scim.filter.ast import (
    And,
    AttrPath,
    Compare,
    CompareOp,
    CompValue,
    Filter,
    Not,
    Or,
    PatchPath,
    Present,
    ValuePath,
)

MAX_FILTER_LENGTH = 16_384
"""Longest accepted filter / path text, in characters."""
MAX_DEPTH = 32
"""Deepest accepted nesting of parentheses, `not` and value-path brackets."""
MAX_TERMS = 512
"""Most comparisons (`attr op value` / `attr pr`) accepted in one filter."""

COMPARE_OPS: frozenset[str] = frozenset(("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"))

_NAME = r"(?:\$ref|[A-Za-z][A-Za-z0-9_-]*)"
_NAME_RE = re.compile(_NAME, re.ASCII | re.IGNORECASE)
_DOTTED_RE = re.compile(rf"({_NAME})(?:\.({_NAME}))?", re.ASCII | re.IGNORECASE)
_URN_RE = re.compile(r"urn:[A-Za-z0-9][A-Za-z0-9-]*:\S+", re.ASCII | re.IGNORECASE)
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?", re.ASCII)
_INT64_MAX = 2**63 - 1
TokenKind = Literal["word", "string", "lparen", "rparen", "lbracket", "rbracket", "end"]
Mode = Literal["filter", "path", "attr"]
_PUNCT: dict[str, TokenKind] = {
    "(": "lparen",
    ")": "rparen",
    "[": "lbracket",
    "]": "rbracket",
}


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    text: str
    pos: int
    value: str = ""

    @property
    def end(self) -> int:
        return self.pos + len(self.text)

    def is_word(self, *words: str) -> bool:
        return self.kind == "word" and self.text.lower() in words

    def describe(self) -> str:
        if self.kind == "end":
            return "end of input"
        shown = self.text if len(self.text) <= 40 else self.text[:37] + "..."
        return repr(shown)


def parse_filter(text: str) -> Filter:
    """Parse a `filter` query parameter / SearchRequest filter; raises InvalidFilter."""
    parser = _Parser(text, "filter")
    result = parser.or_expr(in_brackets=False)
    parser.expect_end("'and', 'or' or end of filter")
    return result


def parse_patch_path(text: str) -> PatchPath:
    """Parse a PATCH operation `path`; raises InvalidPath."""
    parser = _Parser(text, "path")
    return parser.patch_path()


def parse_attr_path(text: str) -> AttrPath:
    """Parse `[urn:]attr[.sub]` (sortBy, attributes, excludedAttributes); raises InvalidFilter."""
    parser = _Parser(text, "attr")
    path = parser.attr_path(parser.expect_word("an attribute path"), relative=False)
    parser.expect_end("end of attribute path")
    return path


def _fold(kind: type[And] | type[Or], parts: list[Filter]) -> Filter:
    """Fold an associative chain into a balanced tree (depth log2 n, not n)."""
    if len(parts) == 1:
        return parts[0]
    mid = (len(parts) + 1) // 2
    return kind(_fold(kind, parts[:mid]), _fold(kind, parts[mid:]))


class _Parser:
    def __init__(self, text: object, mode: Mode) -> None:
        self.mode = mode
        self.label = "path" if mode == "path" else "filter"
        if not isinstance(text, str):
            raise self._error(f"invalid {self.label}: expected a string")
        self.text = text
        if len(text) > MAX_FILTER_LENGTH:
            raise self._error(f"invalid {self.label}: longer than {MAX_FILTER_LENGTH} characters")
        self.tokens = self._tokenize()
        self.index = 0
        self.depth = 0
        self.terms = 0

    # -- errors ---------------------------------------------------------------------

    def _error(self, message: str) -> ScimError:
        return InvalidPath(message) if self.mode == "path" else InvalidFilter(message)

    def fail(self, pos: int, message: str) -> NoReturn:
        raise self._error(f"invalid {self.label} at character {pos + 1}: {message}")

    # -- tokenizer ------------------------------------------------------------------

    def _tokenize(self) -> list[Token]:
        tokens: list[Token] = []
        text, pos = self.text, 0
        while pos < len(text):
            char = text[pos]
            if char.isspace():
                pos += 1
            elif char in _PUNCT:
                tokens.append(Token(_PUNCT[char], char, pos))
                pos += 1
            elif char == '"':
                token = self._string_token(pos)
                tokens.append(token)
                pos = token.end
            else:
                end = pos
                while end < len(text) and not _ends_word(text[end]):
                    end += 1
                tokens.append(Token("word", text[pos:end], pos))
                pos = end
        tokens.append(Token("end", "", len(text)))
        return tokens

    def _string_token(self, start: int) -> Token:
        text, pos = self.text, start + 1
        while pos < len(text):
            char = text[pos]
            if char == "\\":
                pos += 2
                continue
            if char == '"':
                raw = text[start : pos + 1]
                return Token("string", raw, start, self._decode_string(raw, start))
            pos += 1
        self.fail(start, "unterminated string literal")

    def _decode_string(self, raw: str, start: int) -> str:
        try:
            value = json.loads(raw)
        except ValueError as exc:
            self.fail(start, f"invalid JSON string literal ({_json_reason(exc)})")
        if not isinstance(value, str):  # pragma: no cover - raw is always a JSON string
            self.fail(start, "invalid JSON string literal")
        if "\x00" in value:
            self.fail(start, "string literal contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            self.fail(start, "string literal contains an unpaired surrogate escape")
        return value

    # -- token stream ---------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.peek()
        if token.kind != "end":
            self.index += 1
        return token

    def expect(self, kind: TokenKind, what: str) -> Token:
        token = self.peek()
        if token.kind != kind:
            self.fail(token.pos, f"expected {what}, found {token.describe()}")
        return self.advance()

    def expect_word(self, what: str) -> Token:
        return self.expect("word", what)

    def expect_end(self, what: str) -> None:
        token = self.peek()
        if token.kind != "end":
            self.fail(token.pos, f"expected {what}, found {token.describe()}")

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(token.pos, f"nested more than {MAX_DEPTH} levels deep")

    def leave(self) -> None:
        self.depth -= 1

    # -- grammar --------------------------------------------------------------------

    def or_expr(self, *, in_brackets: bool) -> Filter:
        parts = [self.and_expr(in_brackets=in_brackets)]
        while self.peek().is_word("or"):
            self.advance()
            parts.append(self.and_expr(in_brackets=in_brackets))
        return _fold(Or, parts)

    def and_expr(self, *, in_brackets: bool) -> Filter:
        parts = [self.unary(in_brackets=in_brackets)]
        while self.peek().is_word("and"):
            self.advance()
            parts.append(self.unary(in_brackets=in_brackets))
        return _fold(And, parts)

    def unary(self, *, in_brackets: bool) -> Filter:
        token = self.peek()
        if token.is_word("not") and self.peek(1).kind == "lparen":
            self.advance()
            return Not(self.parenthesized(in_brackets=in_brackets))
        if token.is_word("not"):
            self.fail(
                self.peek(1).pos, f"expected '(' after 'not', found {self.peek(1).describe()}"
            )
        if token.kind == "lparen":
            return self.parenthesized(in_brackets=in_brackets)
        if token.kind == "word":
            return self.attr_expression(in_brackets=in_brackets)
        self.fail(token.pos, f"expected an attribute path, '(' or 'not', found {token.describe()}")

    def parenthesized(self, *, in_brackets: bool) -> Filter:
        opening = self.expect("lparen", "'('")
        self.enter(opening)
        inner = self.or_expr(in_brackets=in_brackets)
        self.expect("rparen", "')' or 'and'/'or'")
        self.leave()
        return inner

    def attr_expression(self, *, in_brackets: bool) -> Filter:
        word = self.advance()
        path = self.attr_path(word, relative=in_brackets)
        if self.peek().kind != "lbracket":
            return self.comparison(path, word)
        if in_brackets:
            self.fail(self.peek().pos, "value filters cannot be nested")
        inner = self.value_filter(path, word)
        sub = self.trailing_sub_attr()
        if sub is None:
            return ValuePath(path, inner)
        element_test = self.comparison(AttrPath(None, sub.text[1:]), sub)
        return ValuePath(path, And(inner, element_test))

    def value_filter(self, path: AttrPath, word: Token) -> Filter:
        if path.sub_attr is not None:
            self.fail(
                word.pos, f"a value filter must follow an attribute name, not {word.describe()}"
            )
        opening = self.expect("lbracket", "'['")
        self.enter(opening)
        inner = self.or_expr(in_brackets=True)
        self.expect("rbracket", "']' or 'and'/'or'")
        self.leave()
        return inner

    def trailing_sub_attr(self) -> Token | None:
        """`.sub` directly after `]`: returns its token (text starts with '.')."""
        token = self.peek()
        previous = self.tokens[self.index - 1]
        if token.kind != "word" or not token.text.startswith(".") or token.pos != previous.end:
            return None
        if not _NAME_RE.fullmatch(token.text[1:]):
            self.fail(token.pos + 1, f"invalid sub-attribute name {token.describe()}")
        return self.advance()

    def comparison(self, path: AttrPath, word: Token) -> Filter:
        token = self.peek()
        if token.kind != "word" or (
            token.text.lower() not in COMPARE_OPS and not token.is_word("pr")
        ):
            self.fail(
                token.pos,
                "expected an operator (eq, ne, co, sw, ew, gt, ge, lt, le, pr) after "
                f"{word.describe()}, found {token.describe()}",
            )
        self.advance()
        self.terms += 1
        if self.terms > MAX_TERMS:
            self.fail(token.pos, f"more than {MAX_TERMS} comparisons")
        if token.is_word("pr"):
            return Present(path)
        op: CompareOp = token.text.lower()  # type: ignore[assignment]
        return Compare(path, op, self.comp_value(token))

    def comp_value(self, op_token: Token) -> CompValue:
        token = self.advance()
        if token.kind == "string":
            return token.value
        if token.kind == "word":
            literal = token.text.lower()
            if literal in ("true", "false"):
                return literal == "true"
            if literal == "null":
                return None
            if _NUMBER_RE.fullmatch(token.text):
                return self.number(token)
        self.fail(
            token.pos,
            f"expected a value (JSON string, number, true, false or null) after "
            f"{op_token.describe()}, found {token.describe()}",
        )

    def number(self, token: Token) -> int | float:
        match = _NUMBER_RE.fullmatch(token.text)
        assert match is not None
        try:
            if match.group(1) is None and match.group(2) is None:
                whole = int(token.text)
                if abs(whole) <= _INT64_MAX:
                    return whole
            else:
                real = float(token.text)
                if real not in (float("inf"), float("-inf")):
                    return real
        except ValueError:
            pass
        self.fail(token.pos, f"number {token.describe()} is out of range")

    def attr_path(self, token: Token, *, relative: bool) -> AttrPath:
        text = token.text
        if relative:
            if not _NAME_RE.fullmatch(text):
                self.fail(
                    token.pos,
                    f"expected a sub-attribute name inside '[...]', found {token.describe()}",
                )
            return AttrPath(None, text)
        schema: str | None = None
        rest, offset = text, 0
        if text.lower().startswith("urn:"):
            cut = text.rfind(":")
            schema, rest, offset = text[:cut], text[cut + 1 :], cut + 1
            if not _URN_RE.fullmatch(schema):
                self.fail(token.pos, f"invalid schema URN in {token.describe()}")
        match = _DOTTED_RE.fullmatch(rest)
        if match is None:
            what = "attribute name" if rest else "attribute name after the schema URN"
            self.fail(token.pos + offset, f"invalid {what} {Token('word', rest, 0).describe()}")
        return AttrPath(schema, match.group(1), match.group(2))

    def patch_path(self) -> PatchPath:
        word = self.expect_word("an attribute path")
        path = self.attr_path(word, relative=False)
        if self.peek().kind != "lbracket":
            self.expect_end("'[' or end of path")
            return PatchPath(path)
        inner = self.value_filter(path, word)
        sub = self.trailing_sub_attr()
        self.expect_end("'.subAttribute' or end of path" if sub is None else "end of path")
        return PatchPath(path, inner, None if sub is None else sub.text[1:])


def _ends_word(char: str) -> bool:
    return char.isspace() or char in _PUNCT or char == '"'


def _json_reason(exc: ValueError) -> str:
    return exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
