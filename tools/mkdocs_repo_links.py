"""An mkdocs hook: links from a page to a repository file outside ``docs/`` work on the site.

A page may link to a script as GitHub shows it, e.g. ``[the example](../examples/train.py)``.
mkdocs only knows the files under ``docs/`` and would report the link as broken. For each
such link whose target exists, this hook generates a page ``repo/<path>.md`` that shows the
file (a fenced code block of its text, kept out of the nav) and points the link there. A link
to a file that does not exist is left alone, so ``mkdocs build --strict`` still fails on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files, InclusionLevel

_LINK = re.compile(r"\]\((\.\./[^)#\s]+)(#[^)\s]*)?\)")
_LANG = {".py": "python", ".sh": "bash", ".toml": "toml", ".yml": "yaml", ".json": "json"}
_PREFIX = "repo"


def _targets(docs_dir: Path, page: Path, text: str) -> dict[str, Path]:
    """Relative link -> the repository file it names (only files outside ``docs_dir``)."""
    out = {}
    for link, _ in _LINK.findall(text):
        target = (page.parent / link).resolve()
        if target.is_file() and docs_dir not in target.parents:
            out[link] = target
    return out


def _page_for(repo: Path, target: Path) -> str:
    return f"{_PREFIX}/{target.relative_to(repo).as_posix()}.md"


def on_files(files: Files, config: Any) -> Files:
    docs_dir = Path(config["docs_dir"]).resolve()
    repo = docs_dir.parent
    seen: set[str] = set()
    for f in list(files.documentation_pages()):
        text = Path(f.abs_src_path).read_text(encoding="utf-8")
        for target in _targets(docs_dir, Path(f.abs_src_path), text).values():
            uri = _page_for(repo, target)
            if uri in seen:
                continue
            seen.add(uri)
            name = target.relative_to(repo).as_posix()
            lang = _LANG.get(target.suffix, "text")
            source = target.read_text(encoding="utf-8")
            content = f"# `{name}`\n\n```{lang}\n{source}\n```\n"
            files.append(
                File.generated(config, uri, content=content, inclusion=InclusionLevel.NOT_IN_NAV)
            )
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    repo = docs_dir.parent
    if page.file.abs_src_path is None:
        return markdown
    src = Path(page.file.abs_src_path)
    targets = _targets(docs_dir, src, markdown)
    depth = len(Path(page.file.src_uri).parent.parts)

    def rewrite(m: re.Match[str]) -> str:
        target = targets.get(m.group(1))
        if target is None:
            return m.group(0)
        return f"]({'../' * depth}{_page_for(repo, target)}{m.group(2) or ''})"

    return _LINK.sub(rewrite, markdown)
