"""Structure-aware chunking: ``Document`` -> ``Chunk`` passages sized in tiktoken tokens.

- Markdown headings give each chunk its ``section`` path ("Étapes pour lancer", "2. Méthode > 2.1 …");
  a chunk never spans two sections. A PDF page that continues a section keeps its path (the loader
  passes it as ``heading_path``).
- Interview turns ("**Nom** : …", "Nom : …", "Q : …") stay whole when they fit; a long turn is cut
  between sentences and its continuation keeps the speaker label. A transcript passage's ``section``
  is the interviewer's question it answers (« Question : « … » »): the interviewer is the first
  speaker, and a short follow-up (« Et cette fois ? ») is read with the question before it.
- Paragraphs are cut between sentences, never inside one unless a single sentence is too long.
- ``embed_text`` = a short context header (title — section) + the passage. When a ``fits`` check is
  given (the embedder's own tokenizer), every chunk is split until its ``embed_text`` fits in the
  model's maximum sequence: nothing is silently truncated.

Usage::

    chunks = chunk_document(doc, max_tokens=220, overlap_tokens=30, fits=embedder.fits)
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from assistant.loaders import HEADING, TURN, nest_heading, turn_label
from assistant.tokens import count_tokens
from assistant.types import Chunk, Document

# no cut after an initial or an abbreviation: « article L. 5211-10-1 », « M. Dupont », « art. 7 »
SENTENCE_END = re.compile(r"(?<![\s(\[][A-ZÀ-ÖØ-Ý]\.)(?<!\bart\.)(?<!\bcf\.)(?<!\bp\.)"
                          r"(?:(?<=[.!?…;])\s+(?=[«\"(\[A-ZÀ-ÖØ-Ý0-9-])|(?<=[.!?…]»)\s+)")
LIST_ITEM = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


@dataclass
class Unit:
    """A piece of text that the packer keeps whole: a paragraph, a turn, a list item or a sentence.
    ``question``: in a transcript, the interviewer's question this unit answers (or asks)."""

    text: str
    tokens: int
    sentence: bool = False
    question: str | None = None


def split_sentences(text: str) -> list[str]:
    """Split French prose into sentences (keeps the punctuation)."""
    parts = [p.strip() for p in SENTENCE_END.split(text) if p and p.strip()]
    return parts or [text.strip()]


def _blocks(body: str, transcript: bool, start: list[tuple[int, str]] | None = None) -> list[tuple[list[str], str]]:
    """(heading path, block text) in order. Blank lines end a block; headings reset the path;
    list items are blocks of their own; in transcripts a new speaker label starts a block.
    ``start``: the (level, heading) path in force where the text begins (a PDF page continuing a
    section of the previous page)."""
    path: list[tuple[int, str]] = [(int(level), str(text)) for level, text in start or []]
    blocks: list[tuple[list[str], str]] = []
    current: list[str] = []

    def flush() -> None:
        if current:
            text = "\n".join(current).strip()
            if text:
                blocks.append(([h for _, h in path], text))
            current.clear()

    for line in body.split("\n"):
        heading = HEADING.match(line)
        if heading:
            flush()
            path[:] = nest_heading(path, len(heading.group(1)), heading.group(2).strip())
            continue
        if not line.strip():
            if not transcript:
                flush()
            continue
        if LIST_ITEM.match(line) or (transcript and TURN.match(line)):
            flush()
        current.append(line.rstrip())
    flush()
    return blocks


def _units_of(block: str, max_tokens: int) -> list[Unit]:
    """The block as one unit if it fits, else its sentences (continuation turns keep the label)."""
    tokens = count_tokens(block)
    if tokens <= max_tokens:
        return [Unit(block, tokens)]
    label = turn_label(TURN.match(block))
    units: list[Unit] = []
    for i, sentence in enumerate(split_sentences(block.replace("\n", " "))):
        text = sentence if i == 0 or not label else f"{label} (suite) : {sentence}"
        n = count_tokens(text)
        if n <= max_tokens:
            units.append(Unit(text, n, sentence=True))
            continue
        words = text.split()
        step = max(1, len(words) * max_tokens // (n + 1))
        for start in range(0, len(words), step):
            piece = " ".join(words[start : start + step])
            units.append(Unit(piece, count_tokens(piece), sentence=True))
    return units


def _pack(units: list[Unit], max_tokens: int, overlap_tokens: int) -> list[list[Unit]]:
    chunks: list[list[Unit]] = []
    current: list[Unit] = []
    size = 0
    for unit in units:
        if current and size + unit.tokens > max_tokens:
            chunks.append(current)
            last = current[-1]
            keep = last.sentence and unit.sentence and 0 < last.tokens <= overlap_tokens
            current = [last] if keep else []
            size = last.tokens if keep else 0
        current.append(unit)
        size += unit.tokens
    if current:
        chunks.append(current)
    return chunks


SHORT_QUESTION = 40  # characters: « Et cette fois ? » is read with the question before it
QUESTION_CHARS = 160


def _questions(blocks: list[str]) -> list[str | None]:
    """For each block of a transcript: the interviewer's question in force (the interviewer is the
    first speaker). A short follow-up question is joined to the substantive one before it."""
    labels = [turn_label(TURN.match(block)) for block in blocks]
    interviewer = next((label for label in labels if label), "")
    current: str | None = None
    substantive: str | None = None
    out: list[str | None] = []
    for block, label in zip(blocks, labels, strict=True):
        if interviewer and label == interviewer:
            asked = " ".join(TURN.sub("", block, count=1).split())
            if len(asked) >= SHORT_QUESTION or substantive is None:
                substantive = current = asked
            else:
                current = f"{substantive} … {asked}"
            if len(current) > QUESTION_CHARS:
                current = "…" + current[-QUESTION_CHARS:].split(" ", 1)[-1]
        out.append(current)
    return out


def context_header(title: str, section: str | None) -> str:
    return f"{title} — {section}" if section else title


def _fit(text: str, header: str, fits: Callable[[str], bool]) -> list[str]:
    """Split ``text`` until ``header + text`` passes ``fits`` (sentences first, then words)."""
    if fits(f"{header}\n{text}"):
        return [text]
    pieces = split_sentences(text)
    if len(pieces) == 1:
        pieces = text.split()
        if len(pieces) == 1:
            half = len(text) // 2
            pieces = [text[:half], text[half:]]
    mid = len(pieces) // 2
    joiner = " "
    return _fit(joiner.join(pieces[:mid]), header, fits) + _fit(joiner.join(pieces[mid:]), header, fits)


def chunk_document(
    doc: Document,
    max_tokens: int = 220,
    overlap_tokens: int = 30,
    fits: Callable[[str], bool] | None = None,
) -> list[Chunk]:
    """Cut one document into chunks. See the module docstring for the rules."""
    meta = doc.metadata
    title = str(meta.get("title", ""))
    transcript = meta.get("doc_type") == "entretien"
    sections: dict[tuple[str, ...], list[Unit]] = {}
    order: list[tuple[str, ...]] = []
    blocks = _blocks(doc.text, transcript, meta.get("heading_path"))
    questions = _questions([b for _, b in blocks]) if transcript else [None] * len(blocks)
    for (path, block), question in zip(blocks, questions, strict=True):
        # a level-1 heading equal to the title adds nothing to the section path
        if path and path[0].strip().lower() == title.strip().lower():
            path = path[1:]
        key = tuple(path)
        if key not in sections:
            sections[key] = []
            order.append(key)
        units = _units_of(block, max_tokens)
        for unit in units:
            unit.question = question
        sections[key].extend(units)
    chunks: list[Chunk] = []
    for key in order:
        for packed in _pack(sections[key], max_tokens, overlap_tokens):
            # in a transcript the « section » of a passage is the question it answers
            question = packed[0].question
            section = " > ".join(key) or (f"Question : « {question} »" if question else None)
            header = context_header(title, section)
            joined = "\n".join(u.text for u in packed)
            for text in _fit(joined, header, fits) if fits else [joined]:
                chunks.append(_make_chunk(meta, section, header, text, len(chunks)))
    return chunks


def _make_chunk(meta: dict, section: str | None, header: str, text: str, ordinal: int) -> Chunk:
    source = str(meta.get("source", ""))
    page = meta.get("page")
    digest = hashlib.sha1(f"{source}\x00{page}\x00{ordinal}\x00{header}\x00{text}".encode()).hexdigest()
    chunk_meta = {
        k: v for k, v in meta.items()
        if k in {"source", "title", "doc_type", "page", "illustrative", "echelle", "departement",
                 "territoire", "themes", "date", "speakers", "statut", "ocr"}
    }
    chunk_meta.update(section=section, ordinal=ordinal, tokens=count_tokens(text))
    return Chunk(id=digest[:24], text=text, embed_text=f"{header}\n{text}", metadata=chunk_meta)
