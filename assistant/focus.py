"""Where in a file the answer usually is: passages added to the retrieved ones before composing.

Retrieval ranks passages by their words; the answer to « comment lancer … ? » is in the « Étapes
pour lancer » section of the fiche that retrieval found, even when that section shares few words
with the question. Two rules, both from the structure of the corpus (see corpus/README.md):

1. **Section intents.** Fiches follow the centre's templates. A question that asks how to start,
   what it costs, what the law says, who takes part, what to avoid or what a thing is (« c'est
   quoi… ? », or a bare subject such as « conseil de développement ? ») points to one section of a
   fiche outil; a question that asks for an example or what others did points to « Ce qui a été
   fait » and « Ce qui a marché » of a fiche expérience (so does any question whose best passage is
   in a fiche expérience: what was done is its core). For the first two files of that type among
   the retrieved passages, the passages of that section are added (at most ``MAX_ADDED``).
2. **Continuations.** In an interview or a report, an answer often runs on into the next passage
   (the rest of a long answer, a list continued on the next PDF page): when one of the two best
   passages comes from such a file, the next passage of the same file is added (measured: looking
   further down the list for such passages changes nothing on dev); in an interview, only when it continues
   the same thread (the same question, or a short follow-up such as « Et cette fois ? » that the
   chunker reads with it).

A passage of rules 1 or 2 that retrieval already found stays where it is but is in focus too; an
added passage has score 0 (it was not retrieved). The
composer (``assistant.compose``) gives focus passages a bonus and quotes the sentence of each of the
first three that best matches the question, so a focus passage is cited only through a sentence it
contains.

Usage::

    hits, focus = add_focus(question, hits, index)   # focus: ids of the passages added or singled out
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from assistant.store.lexical import strip_accents
from assistant.types import Hit

if TYPE_CHECKING:
    from assistant.retrieve import Index

MAX_ADDED = 3
FILES_PER_INTENT = 2
SCAN = 6  # retrieved passages whose files are looked at
CONTINUED = 2  # best passages whose next passage is added
CONTINUED_TYPES = ("entretien", "rapport")

EXAMPLE = re.compile(
    r"\b(exemples?|expériences?|retours? d'expérience|ailleurs|déjà (?:été )?fait|quelqu'un|qqn|concrètement"
    r"|d'autres (?:communes|territoires|collectivités)|vous avez ça|ça donne quoi|comment (?:ils|elles) ont"
    r"|ont[- ]ils|s'est passé|a réussi|ont réussi|tirée?s? d'autres|comment font"
    r"|comment (?:[\w'-]+\s+){1,3}(?:a|ont)\s+\w+(?:é|ée|és|ées|it|is))\b",
    re.I,
)
# (name, question pattern, document type, sections of the template)
INTENTS: list[tuple[str, re.Pattern[str], str, tuple[str, ...]]] = [
    ("étapes", re.compile(r"\b(comment|étapes?|lancer|monter|créer|mettre en place|démarrer|organiser|prépar\w*"
                          r"|par où commencer|par quoi)\b", re.I), "fiche_outil", ("Étapes pour lancer",)),
    ("moyens", re.compile(r"\b(co[uû]tent|co[uû]te|co[uû]ts?|budgets?|financ\w*|pa[yi]e(nt|r)?|moyens|argent|subventions?"
                          r"|tarifs?|prix)\b", re.I), "fiche_outil", ("Budget et moyens",)),
    ("cadre légal", re.compile(r"\b(obligatoires?|obligée?s?|loi|légal\w*|juridiques?|code|articles?|décrets?|droit"
                               r"|durée (légale|minimale|maximale)|doit durer|combien de temps)\b|\bdurée\s*\?", re.I), "fiche_outil",
     ("Cadre légal",)),
    # « qui » asked, not the relative pronoun: « qui le choisit ? », « on invite qui ? », « qui siège »
    ("participants", re.compile(r"(^|[:;,]\s*|\bet\s+|c'est\s+)qui\b|\bqui(\s+[\w'-]+){0,2}\s*\?|\b\w+\s+qui\s*\?"
                                r"|\bqui (participe|siège|compose|anime|pilote|décide|désigne|choisit|gère)\w*"
                                r"|\binvit\w*\s+qui\b|\bmembres?\b|\bsiéger\b|\bcomposition\b", re.I), "fiche_outil", ("Qui participe ?",)),
    ("pièges", re.compile(r"\b(erreurs?|éviter|pièges?|risques?|écueils?)\b", re.I), "fiche_outil",
     ("Pièges à éviter",)),
    ("exemple", EXAMPLE, "fiche_experience", ("Ce qui a été fait", "Ce qui a marché")),
    ("définition", re.compile(r"\b(c'est quoi|qu'est-ce qu'(?:un|une)\b|qu'est-ce que c'est|définition|définir|veut dire"
                              r"|signifie|à quoi sert|ça sert à quoi)\b", re.I), "fiche_outil", ("En bref",)),
]
# a bare subject asks what it is (« conseil de développement ? »), when nothing else is asked
BARE = re.compile(r"^\W*(?!(?:qui|comment|combien|quand|ou|pourquoi|quel\w*|que|quoi|et)\b)[\w'-]+(?:\s+[\w'-]+){0,3}\s*\?\s*$",
                  re.I)
EXPERIENCE_CORE = ("exemple", "fiche_experience", ("Ce qui a été fait", "Ce qui a marché"))


# the patterns are matched without accents: « les erreurs a eviter », « quelles etapes »
_PLAIN = [(name, re.compile(strip_accents(pattern.pattern), pattern.flags), doc_type, sections)
          for name, pattern, doc_type, sections in INTENTS]


def intents(question: str) -> list[tuple[str, str, tuple[str, ...]]]:
    """The section intents of a question: (name, document type, sections); accents ignored."""
    plain = strip_accents(question)
    found = [(name, doc_type, sections) for name, pattern, doc_type, sections in _PLAIN if pattern.search(plain)]
    if not found and BARE.search(plain):
        found = [(name, doc_type, sections) for name, _, doc_type, sections in INTENTS if name == "définition"]
    return found


def _thread(section: object) -> str | None:
    """The interviewer's substantive question of an interview passage: « Question : « A … Et cette
    fois ? » » and « Question : « A » » are one thread (a short follow-up is joined to A)."""
    return str(section).split(" … ", 1)[0].removesuffix(" »") if section else None


def _in_sections(section: str | None, wanted: tuple[str, ...]) -> bool:
    return bool(section) and any(section == s or section.startswith(s + " >") for s in wanted)


def add_focus(question: str, hits: list[Hit], index: Index) -> tuple[list[Hit], frozenset[str]]:
    """``hits`` with the passages of rules 1 and 2 inserted (a continuation after its passage, a section
    after its file's last hit), and the ids of all the passages of rules 1 and 2. ``question`` is
    already corrected of its typos (``index.lexical.correct``), as retrieval reads it."""
    out = list(hits)
    have = {h.chunk.id for h in out}
    wanted: list[str] = []  # chunk ids to add, in order
    after: dict[str, str] = {}  # a continuation goes right after its passage

    for hit in hits[:CONTINUED]:
        meta = hit.chunk.metadata
        if meta.get("doc_type") not in CONTINUED_TYPES:
            continue
        sequence = index.file_chunks(str(meta.get("source")))
        position = sequence.index(hit.chunk.id) if hit.chunk.id in sequence else -1
        if 0 <= position < len(sequence) - 1:
            nxt = sequence[position + 1]
            if meta.get("doc_type") == "rapport" or _thread(index.metadata[nxt].get("section")) == _thread(meta.get("section")):
                wanted.append(nxt)
                after[nxt] = hit.chunk.id

    files: list[str] = []
    for hit in hits[:SCAN]:
        source = str(hit.chunk.metadata.get("source"))
        if source not in files:
            files.append(source)
    added_by_intents = 0
    asked = intents(question)
    if hits and hits[0].chunk.metadata.get("doc_type") == "fiche_experience" and not any(n == "exemple" for n, _, _ in asked):
        asked.append(EXPERIENCE_CORE)  # answered from an experience: what was done is its core
    for _, doc_type, sections in asked:
        typed = [f for f in files if index.file_doc_type(f) == doc_type][:FILES_PER_INTENT]
        for source in typed:
            for cid in index.file_chunks(source):
                if added_by_intents >= MAX_ADDED:
                    break
                if cid not in wanted and _in_sections(index.metadata[cid].get("section"), sections):
                    wanted.append(cid)
                    added_by_intents += 1

    # a wanted passage already retrieved stays where it is, and is in focus all the same
    added: set[str] = {cid for cid in wanted if cid in have}
    wanted = [cid for cid in wanted if cid not in have]
    if not wanted:
        return out, frozenset(added)
    chunks = index.manifest.get_chunks(wanted)
    for cid in wanted:
        chunk = chunks.get(cid)
        if chunk is None or cid in have:
            continue
        source = chunk.metadata.get("source")
        if cid in after:
            last = next(i for i, h in enumerate(out) if h.chunk.id == after[cid])
        else:
            last = max((i for i, h in enumerate(out) if h.chunk.metadata.get("source") == source), default=len(out) - 1)
        out.insert(last + 1, Hit(chunk, 0.0))
        have.add(cid)
        added.add(cid)
    return out, frozenset(added)
