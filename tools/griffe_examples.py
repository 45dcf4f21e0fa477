"""A griffe extension for the documentation site: chute's docstrings as the site shows them.

- ``Example:`` becomes ``Examples:``. chute's Google-style docstrings head their doctests
  ``Example:`` (as Napoleon reads them); griffe's Google parser knows only ``Examples:`` and
  would render the doctest as an admonition of Markdown text (``[0, 1]`` became a broken
  link). Renamed, the site shows the examples as code, exactly as the doctests run them.
- Sphinx roles (``:func:`~chute.rng.current```) become code spans (``current``): Markdown
  has no roles, and the raw text would show.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|exc|obj):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


def markdown_docstring(text: str) -> str:
    """The docstring ``text`` with the two rewrites above."""
    return _ROLE.sub(_code, _HEADING.sub(r"\1Examples:", text))


class ExampleSections(griffe.Extension):
    """Apply :func:`markdown_docstring` to every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = markdown_docstring(obj.docstring.value)
