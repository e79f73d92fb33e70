"""The corpus glossary of acronyms, read for query expansion.

A glossary is any corpus file whose front matter says ``glossaire: true``; each entry is a heading
``## SIGLE — expansion`` followed by its definition (see corpus/README.md).

Usage::

    terms = load_glossary(Path("corpus"))
    terms["PETR"]   # "Pôle d'équilibre territorial et rural"
"""

from __future__ import annotations

import re
from pathlib import Path

from assistant.loaders import is_candidate, split_front_matter

ENTRY = re.compile(r"^##\s+(\S+)\s+—\s+(.+?)\s*$", re.M)


def parse_glossary(text: str) -> dict[str, str]:
    """``## SIGLE — expansion`` headings -> {SIGLE: expansion}."""
    return {m.group(1): m.group(2) for m in ENTRY.finditer(text)}


def load_glossary(corpus_dir: Path) -> dict[str, str]:
    """All entries of the glossary files of the corpus (files marked ``glossaire: true``)."""
    out: dict[str, str] = {}
    for path in sorted(corpus_dir.rglob("*.md")):
        if not is_candidate(path, corpus_dir):
            continue
        meta, body, _ = split_front_matter(path.read_text(encoding="utf-8", errors="replace"), path.name)
        if meta.get("glossaire") is True:
            out.update(parse_glossary(body))
    return out
