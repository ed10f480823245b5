"""Griffe extension: render weitiao's plain docstrings well in Markdown.

weitiao's docstrings are written for `help()` and doctest (STYLE.md): free text,
``double backticks``, reST roles such as :func:`lr_find`, now and then a ``::`` literal
block or a "Title:" line over an indented table, and ``>>>`` examples. Markdown would turn
the ``>>>`` lines into nested block quotes, so this extension, applied while mkdocstrings
loads the package:

- puts each run of doctest lines into a ``pycon`` code block (dropping ``# doctest:``
  directives);
- turns the roles into code spans and a trailing ``::`` into ``:``;
- puts a blank line between a "Title:" line and the indented block under it, so the block
  shows as a code block instead of a Google-style section or a run-on paragraph (the
  Google section names griffe knows, such as "Args:", are left alone).

The library's docstrings themselves stay as they are.
"""
from __future__ import annotations

import re

import griffe

ROLE = re.compile(r":(?:func|meth|class|attr|mod|data|obj|exc):`~?([^`]+)`")
DIRECTIVE = re.compile(r"\s*#\s*doctest:.*$")
SECTIONS = {"args", "arguments", "parameters", "params", "returns", "return", "raises",
            "yields", "examples", "example", "note", "notes", "attributes", "warns",
            "warnings", "see also", "references", "other parameters", "receives"}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _titles_an_indented_block(line: str, following: str) -> bool:
    title = line.strip()
    return (title.endswith(":") and bool(following.strip())
            and _indent(following) >= _indent(line) + 4
            and title.rstrip(":").strip().lower() not in SECTIONS)


def _convert(text: str) -> str:
    out: list[str] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if not stripped.startswith(">>>"):
            out.append(line[:-1] if line.endswith("::") and not line.endswith(":::")
                       else line)
            if i + 1 < len(lines) and _titles_an_indented_block(line, lines[i + 1]):
                out.append("")
            i += 1
            continue
        indent = line[:len(line) - len(stripped)]
        if out and out[-1].strip():
            out.append("")
        out.append(f"{indent}```pycon")
        # A doctest run: prompts, continuation lines and expected output, up to a blank line.
        while i < len(lines) and lines[i].strip():
            out.append(DIRECTIVE.sub("", lines[i]))
            i += 1
        out.append(f"{indent}```")
        out.append("")
    return "\n".join(out)


def render(text: str) -> str:
    """The docstring text as mkdocstrings should see it."""
    return ROLE.sub(r"`\1`", _convert(text))


class WeitiaoDocstrings(griffe.Extension):
    """Applies :func:`render` to every docstring once the object tree is loaded."""

    def on_object(self, *, obj, **kwargs) -> None:
        if obj.is_alias or obj.docstring is None:
            return
        obj.docstring.value = render(obj.docstring.value)
