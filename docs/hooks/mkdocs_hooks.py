"""MkDocs hooks for weitiao's site (registered in mkdocs.yml under ``hooks:``).

- ``cli.md``: the marker ``<!-- cli-reference -->`` is replaced by the ``--help`` text of
  ``python -m weitiao`` and of every sub-command, read from ``weitiao.cli`` at build time,
  so the reference never falls behind the parser (new sub-commands appear on their own).
- Pages that other parts of the project write (``performance.md``, ``reliability.md``,
  ``experiments.md``) are in the navigation; while one of them does not exist yet, a short
  generated page says so, instead of a broken link failing ``mkdocs build --strict``.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys

from mkdocs.structure.files import File

CLI_MARKER = "<!-- cli-reference -->"
# page -> (title, who writes it and how)
OWNED_ELSEWHERE = {
    "performance.md": ("Performance", "the benchmarks in `benchmarks/` "
                       "(`PYTHONPATH=python python benchmarks/kernels.py --write "
                       "docs/performance.md`)"),
    "reliability.md": ("Reliability", "the reliability and security work (issue 7)"),
    "experiments.md": ("Experiments", "`python -m pytest -m experiment` (issue 5)"),
}


def on_files(files, config, **kwargs):
    for page, (title, source) in OWNED_ELSEWHERE.items():
        if files.get_file_from_path(page) is None:
            files.append(File.generated(
                config, page,
                content=f"# {title}\n\nThis page has not been written yet: it is produced "
                        f"by {source}.\n"))
    return files


def _import_cli():
    """weitiao.cli: the installed package, or the source tree's (built in place)."""
    try:
        from weitiao import cli
    except ImportError:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        sys.path.insert(0, os.path.join(root, "python"))
        from weitiao import cli
    return cli


class _Captured(Exception):
    def __init__(self, parser):
        self.parser = parser


def _parser():
    """The ArgumentParser that ``weitiao.cli.main`` builds, caught before it parses."""
    cli = _import_cli()
    original = argparse.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):
        raise _Captured(self)

    argparse.ArgumentParser.parse_args = capture
    try:
        cli.main([])
    except _Captured as caught:
        return caught.parser
    finally:
        argparse.ArgumentParser.parse_args = original
    raise RuntimeError("weitiao.cli.main did not build an ArgumentParser")


def _help(parser) -> str:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        parser.print_help()
    return out.getvalue().rstrip()


def cli_reference() -> str:
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "90"  # argparse wraps to the terminal's width; fix it for the page
    try:
        parser = _parser()
        parts = ["```text", f"$ python -m weitiao --help\n{_help(parser)}", "```"]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    parts += ["", f"### `{name}`", "", "```text",
                              f"$ python -m weitiao {name} --help\n{_help(sub)}", "```"]
    finally:
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns
    return "\n".join(parts)


def on_page_markdown(markdown, page, config, files, **kwargs):
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    return markdown
