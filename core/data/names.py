"""One rule for the names people give: dataset names, engine ids and user names.

A name is kept and compared in one form: Unicode NFKC (so the fullwidth ``ＥＳＮ-7001`` is ``ESN-7001``)
with the whitespace around it removed. It may not hold a control character (category Cc: NUL, BEL, ESC,
tab, CR, LF...), a format character (Cf: the zero-width space U+200B, the bidirectional overrides
U+202A-U+202E and isolates U+2066-U+2069, the byte-order mark...), a line or paragraph separator
(U+2028, U+2029) or an unpaired surrogate; nor be empty, nor longer than its kind allows, before or after
normalising: 100 characters for a dataset name (:data:`DATASET_MAX_CHARS`), 64 for an engine id
(:data:`ENGINE_MAX_CHARS`, as the store keeps them) and for a user name (:data:`USER_MAX_CHARS`). A refusal
is one sentence naming the field, the character and its position (1 for the first), e.g. ``the engine id
'ESN…' contains a zero-width space (U+200B) at position 4``; the name is shown only up to the character at
fault.

Names stored before this rule are still found: a lookup tries the folded query, then the query as given
(:func:`lookup_keys`). Text output escapes what such a name may hold (:func:`escape`).
"""

from __future__ import annotations

import argparse
import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import UserError

DATASET_MAX_CHARS = 100
ENGINE_MAX_CHARS = 64
USER_MAX_CHARS = 64
FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
SHOWN_CHARS = 20
"""Characters of a refused name quoted in its sentence."""

_DESCRIPTIONS = {
    "\x00": "a null character", "\x07": "a bell character", "\x08": "a backspace", "\t": "a tab",
    "\n": "a line feed", "\x0b": "a vertical tab", "\x0c": "a form feed", "\r": "a carriage return",
    "\x1b": "an escape character", "\x7f": "a delete character", "\u200b": "a zero-width space",
    "\u200c": "a zero-width non-joiner", "\u200d": "a zero-width joiner", "\u2028": "a line separator",
    "\u2029": "a paragraph separator", "\ufeff": "a zero-width no-break space (byte-order mark)",
}


@dataclass(frozen=True)
class Kind:
    """A kind of name: what sentences call it and how many characters it may have."""

    label: str
    max_chars: int


DATASET = Kind("dataset name", DATASET_MAX_CHARS)
ENGINE = Kind("engine id", ENGINE_MAX_CHARS)
USER = Kind("user name", USER_MAX_CHARS)


def forbidden(char: str) -> bool:
    """Whether `char` may not appear in a name (control, format, separator or surrogate)."""
    return unicodedata.category(char) in FORBIDDEN_CATEGORIES


def fold(value: str) -> str:
    """`value` in NFKC with the surrounding whitespace removed: the form names are stored and compared in."""
    return unicodedata.normalize("NFKC", value).strip()


def lookup_keys(value: str) -> list[str]:
    """The forms to look a stored name up by: the folded query, then the query as given (names stored
    before this rule were not folded)."""
    folded = fold(value)
    return [folded] if folded == value else [folded, value]


def _describe(char: str) -> str:
    if char in _DESCRIPTIONS:
        return _DESCRIPTIONS[char]
    category = unicodedata.category(char)
    if category == "Cc":
        return "a control character"
    if category == "Cs":
        return "an unpaired surrogate"
    return f"the invisible format character {unicodedata.name(char, 'without a name').lower()}"


def _shown(value: str, end: int) -> str:
    head = value[:min(end, SHOWN_CHARS)]
    return f"{head}…" if len(value) > len(head) else head


def refusal(value: object, kind: Kind) -> str | None:
    """Why `value` is not a usable `kind` of name (a phrase starting 'the engine id ...'), or None."""
    if not isinstance(value, str):
        return f"the {kind.label} must be text"
    bad = next((i for i, char in enumerate(value) if forbidden(char)), None)
    if bad is not None:
        char = value[bad]
        return (f"the {kind.label} '{_shown(value, bad)}' contains {_describe(char)} (U+{ord(char):04X}) "
                f"at position {bad + 1}")
    folded = fold(value)
    if not folded:
        return f"the {kind.label} is empty"
    longest = max(len(value), len(folded))
    if longest > kind.max_chars:
        return (f"the {kind.label} '{_shown(folded, SHOWN_CHARS)}' is {longest} characters long, more than the "
                f"{kind.max_chars} allowed")
    bad = next((i for i, char in enumerate(folded) if forbidden(char)), None)
    if bad is not None:
        char = folded[bad]
        return (f"the {kind.label} '{_shown(folded, bad)}' becomes {_describe(char)} (U+{ord(char):04X}) at "
                f"position {bad + 1} when normalised")
    return None


def sentence(phrase: str, where: str = "") -> str:
    """`phrase` as a sentence, after `where` (e.g. ``readings[3].engine``) when given."""
    return f"{where}: {phrase}." if where else f"{phrase[0].upper()}{phrase[1:]}."


def normalise(value: object, kind: Kind, where: str = "") -> str:
    """`value` as stored and compared (see the module); UserError with one sentence when it is refused."""
    phrase = refusal(value, kind)
    if phrase is not None:
        raise UserError(sentence(phrase, where))
    return fold(str(value))


def argument(kind: Kind) -> Callable[[str], str]:
    """An argparse ``type`` normalising a command-line `kind` of name (a refusal is argparse's error)."""

    def parse(value: str) -> str:
        phrase = refusal(value, kind)
        if phrase is not None:
            raise argparse.ArgumentTypeError(sentence(phrase))
        return fold(value)

    parse.__name__ = kind.label
    return parse


def escape(text: str) -> str:
    """`text` with every forbidden character written as a Python escape (ESC as ``\\x1b``), for terminals."""
    if text.isprintable() or not any(forbidden(char) for char in text):
        return text
    out = []
    for char in text:
        if not forbidden(char):
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return "".join(out)


def _class(chars: list[int]) -> str:
    """A regular-expression character class body of the code points `chars` (sorted), as ``\\uXXXX`` ranges."""
    parts, start = [], None
    for k, code in enumerate(chars):
        if start is None:
            start = code
        if k + 1 == len(chars) or chars[k + 1] != code + 1:
            parts.append(f"\\u{start:04x}" if start == code else f"\\u{start:04x}-\\u{code:04x}")
            start = None
    return "".join(parts)


@functools.cache
def json_pattern() -> str:
    """The rule as the JSON Schema ``pattern`` the OpenAPI states of every name field, beside ``maxLength``
    (ECMA-262 and Python read it alike): no forbidden character of the Basic Multilingual Plane, and something
    besides whitespace. Surrogates (which a pattern without ECMA's ``u`` flag would read as halves of every
    character beyond that plane) and forbidden characters beyond it (e.g. U+E0001) are refused by
    :func:`refusal` but not described by the pattern."""
    bmp = range(0x10000)
    bad = _class([c for c in bmp if forbidden(chr(c)) and unicodedata.category(chr(c)) != "Cs"])
    space = _class([c for c in bmp if chr(c).isspace() and not forbidden(chr(c))])
    return f"^[^{bad}]*[^{bad}{space}][^{bad}]*$"

