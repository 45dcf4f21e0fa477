"""The documentation site's promises: the griffe rewrites, the README's two commands and links."""

from __future__ import annotations

import gc
import importlib.util
import re
from pathlib import Path

import pytest

pytest.importorskip("griffe")

_PATH = Path(__file__).resolve().parents[1] / "tools" / "griffe_examples.py"
_spec = importlib.util.spec_from_file_location("griffe_examples", _PATH)
assert _spec is not None and _spec.loader is not None
griffe_examples = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(griffe_examples)


def test_example_heading_becomes_an_examples_section() -> None:
    text = "Sum.\n\nExample:\n    >>> [0, 1]\n    [0, 1]\n"
    assert griffe_examples.markdown_docstring(text) == text.replace("Example:", "Examples:")
    # only a heading line, not the word inside prose
    assert griffe_examples.markdown_docstring("An Example: here") == "An Example: here"


def test_sphinx_roles_become_code_spans() -> None:
    md = griffe_examples.markdown_docstring
    assert md("use :func:`chute.rng.current` now") == "use `chute.rng.current` now"
    assert md("a :class:`~chute.errors.DatasetFormatError`") == "a `DatasetFormatError`"
    assert md(":meth:`DataLoader.load_state_dict`") == "`DataLoader.load_state_dict`"


def test_the_site_renders_examples_as_code() -> None:
    """griffe with the extension parses a chute docstring's example as an examples section."""
    import griffe

    pkg = griffe.load(
        "chute",
        search_paths=[str(_PATH.parents[1] / "src")],
        extensions=griffe.load_extensions(griffe_examples.ExampleSections),
    )
    sections = pkg["DataLoader"].docstring.parse("google")
    assert [s.kind.value for s in sections][-1] == "examples"


ROOT = _PATH.parents[1]


def test_readme_keeps_its_two_commands_first_and_its_links_resolve() -> None:

    readme = (ROOT / "README.md").read_text()
    sections = re.findall(r"^## (.+)$", readme, re.MULTILINE)
    assert sections[0] == "Two commands"
    commands = re.findall(r"```bash\n(.+?)\n```", readme)
    assert commands[0].endswith("chute demo") and commands[1].endswith("python -m pytest")
    links = re.findall(r"\]\(((?!https?:)[^)#]+)", readme)
    assert "docs/index.md" in links and "docs/migrating.md" in links
    missing = [link for link in links if not (ROOT / link).exists()]
    assert missing == [], f"README links to files that do not exist: {missing}"


def test_the_errors_page_explains_every_error_class() -> None:
    """docs/errors.md has a "When" and a "Fix" for each subclass of ChuteError."""
    import chute.errors

    page = (ROOT / "docs" / "errors.md").read_text()
    for name in chute.errors.__all__:
        if name == "ChuteError":  # the base class: the page's introduction
            continue
        heading = f"### [`{name}`][chute.errors.{name}]"
        assert heading in page, f"docs/errors.md has no section for {name}"
        section = page.split(heading, 1)[1].split("\n### ", 1)[0]
        assert "**When:**" in section and "**Fix:**" in section, name


_RUN = re.compile(r"<!-- test: [^>]*-->\n```python\n(.*?)\n```", re.DOTALL)


@pytest.mark.parametrize("page", ["getting-started.md", "datasets.md", "resume.md"])
def test_marked_code_blocks_of_a_page_run(
    page: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Code blocks marked ``<!-- test: ... -->`` run, in order, in one namespace per page."""
    blocks = _RUN.findall((ROOT / "docs" / page).read_text())
    assert blocks, f"docs/{page} has no marked code blocks"
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page}"}
    try:
        for k, code in enumerate(blocks):
            exec(compile(code, f"docs/{page} block {k}", "exec"), namespace)
    finally:
        namespace.clear()  # drops loaders and iterators: their workers stop now
        gc.collect()
