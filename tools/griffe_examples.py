"""A griffe extension for the documentation site: ``Example:`` is an examples section.

chute's Google-style docstrings head their doctests ``Example:`` (as Napoleon reads them);
griffe's Google parser knows only ``Examples:`` and would render the doctest as an admonition
of Markdown text (so ``[0, 1]`` became a broken link). This renames the heading when a
docstring is loaded, so the site shows the examples as code, exactly as the doctests run them.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_HEADING = re.compile(r"^(\s*)Example:[ \t]*$", re.MULTILINE)


class ExampleSections(griffe.Extension):
    """Rename ``Example:`` section headings to ``Examples:`` in every loaded docstring."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _HEADING.sub(r"\1Examples:", obj.docstring.value)
