"""Plain dataclasses passed between the stages: Document -> Chunk -> Hit -> Answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DOC_TYPES = ("fiche_outil", "fiche_experience", "entretien", "rapport", "autre")
ECHELLES = ("quartier", "commune", "intercommunalite", "pays_petr", "departement", "region")


@dataclass
class Document:
    """One loadable unit of a corpus file (a whole file, or one PDF page).

    ``metadata`` holds at least ``source`` (path relative to the corpus root), ``title``,
    ``doc_type`` and ``illustrative``; PDFs add ``page`` (1-based); front matter fields are kept.
    """

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class Chunk:
    """A passage ready to embed. ``embed_text`` = short context header + ``text``."""

    id: str
    text: str
    embed_text: str
    metadata: dict[str, Any]


@dataclass
class Hit:
    """A retrieved chunk with its score."""

    chunk: Chunk
    score: float
    dense_rank: int | None = None
    lexical_rank: int | None = None
    dense_score: float | None = None


@dataclass
class Citation:
    """A numbered source of an answer (see the JSON contract in DESIGN.md)."""

    n: int
    source: str
    title: str
    doc_type: str
    page: int | None
    section: str | None
    text: str
    score: float
    illustrative: bool
    ocr: bool = False  # the passage's text was recognised from a scanned page (OCR)


@dataclass
class Answer:
    """What ``answer()`` returns to every front end."""

    question: str
    standalone_question: str
    status: str  # "answered" | "no_answer"
    answer: str
    citations: list[Citation] = field(default_factory=list)
    experiences: list[dict[str, Any]] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)
