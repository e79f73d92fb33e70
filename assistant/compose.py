"""The built-in answer composer (no LLM, no network): passages -> short cited French answer.

From the best passages it selects the sentences and list items that share the most terms with the
question (each term weighs its idf, lowered when most of the passages contain it: the subject they
all share tells less about which sentence answers than the aspect asked about). Never quoted: a
question (« Faut-il un garant ? » states nothing); an interviewer's turn (it frames the question,
the interviewee answers it); the « Contact » section of a fiche expérience unless the question asks
for a contact; a fiche's « Pour aller plus loin » reading list unless the question asks for
resources. It keeps the units in their original order inside each passage (steps stay in order),
drops near-repetitions, and writes Markdown: a lead sentence that only frames the answer, points
that each end with their citation ``[n]``, then « Pour aller plus loin » with the sources.
Every point is a sentence (possibly trimmed of a list marker) taken verbatim from the cited passage:
the composer never states anything that is not in a cited passage. The passages that
``assistant.focus`` added (the section the question asks about, the continuation of a passage) get a
bonus, and the best sentence of each of the first three is quoted, as is the best sentence of each
of the two best-ranked retrieved passages.

Usage::

    text, used = compose(question, hits, idf)   # used: the hits actually cited, in citation order
    text, used = compose(question, hits, idf, focus=focus_ids)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from assistant.chunking import LIST_ITEM, split_sentences
from assistant.loaders import TURN, turn_label
from assistant.store.lexical import analyse
from assistant.types import Hit

MAX_POINTS = 9
MAX_SOURCES = 5
RANK_DECAY = 0.2  # a unit's score is divided by (1 + RANK_DECAY x rank of its passage)
FOCUS_BONUS = 1.0  # units of the passages added by assistant.focus
FOCUS_QUOTED = 3  # added passages whose best unit is always quoted
TOP_QUOTED = 2  # best-ranked retrieved passages whose best unit is always quoted
MIN_UNIT_CHARS = 25
LOCAL_WEIGHT = 1.0  # share of a term's weight that depends on how few of the passages contain it
CONTACT_ASKED = re.compile(r"\b(contact\w*|joindre|interlocut\w*|référent\w*|qui (?:appeler|solliciter|écrire))\b", re.I)
READING_ASKED = re.compile(r"\b(ressources?|lire|lectures?|guides?|documentation|références?|bibliographie|en savoir plus|plus loin)\b", re.I)
PROCEDURAL = re.compile(r"\b(comment|étapes?|lancer|monter|créer|mettre en place|démarrer|organiser|faire)\b", re.I)
SPEAKER = re.compile(r"^\*\*([^*]+)\*\*\s*:\s*")
CONTINUED_TURN = re.compile(r"^([^:\n]{1,40}?) \(suite\) : ")
LETTER_LABEL = re.compile(r"^[A-Z] : (?=\S)")
# the "this text is invented" notice at the top of illustrative files: shown as a mark, never quoted
DISCLAIMER = re.compile(r"^\W*(exemple|entretien|document|rapport|texte)\s+fictif", re.I)


@dataclass
class Unit:
    hit_index: int
    position: int
    text: str
    terms: set[str]
    is_step: bool
    score: float = 0.0


def units_of(text: str, interviewer: str | None = None) -> list[tuple[str, bool]]:
    """Sentences and list items of a passage, with a flag for numbered steps. ``interviewer``: in an
    interview, the interviewer's label; their turns (« Enquêtrice : Vous avez récemment renouvelé
    votre projet social. ») frame a question and state nothing, so they are left out."""
    out: list[tuple[str, bool]] = []
    speaker = ""
    for line in text.split("\n"):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        turn = TURN.match(line)
        if turn:
            speaker = turn_label(turn).removesuffix(" (suite)").strip()
        if interviewer and speaker == interviewer:
            continue
        if LIST_ITEM.match(line):
            is_step = bool(re.match(r"^\s*\d+[.)]", line))
            out.append((LIST_ITEM.sub("", line).strip(), is_step))
            continue
        for sentence in split_sentences(line):
            out.append((sentence.strip(), False))
    # a question (« Faut-il un garant ? », an interviewer's turn) states nothing: never a point;
    # the length is that of what is said, without the speaker (« R (suite) : Franchement non. »)
    return [(t, s) for t, s in out if len(_said(t)) >= MIN_UNIT_CHARS and not DISCLAIMER.match(t)
            and not t.rstrip().endswith("?")]


def _said(text: str) -> str:
    """A unit without its speaker label (« **Élue** : », « Directeur (suite) : »)."""
    return CONTINUED_TURN.sub("", TURN.sub("", text, count=1), count=1)


def _clean(text: str) -> str:
    text = SPEAKER.sub(lambda m: f"{m.group(1)} : ", text)
    text = CONTINUED_TURN.sub(r"\1 : ", text)  # « Directeur (suite) : » is the chunker's mark
    text = LETTER_LABEL.sub("", text)  # « R : » names nobody: the source line says who speaks
    text = text.rstrip()
    if text.startswith("*") and text.endswith("*") and not text.startswith("**"):
        text = text.strip("*").strip()
    if text and text[-1] not in ".!?…:;»)":
        text += "."
    return text


def select_units(question: str, hits: list[Hit], idf: Callable[[str], float],
                 focus: frozenset[str] = frozenset()) -> list[Unit]:
    """The units to quote, grouped by passage rank, in their original order inside a passage.
    ``focus``: ids of passages added by ``assistant.focus`` (bonus; their best unit is quoted)."""
    q_terms = set(analyse(question))
    if not q_terms:
        return []
    weight = _local_weights(q_terms, hits, idf)
    procedural = bool(PROCEDURAL.search(question))
    candidates: list[Unit] = []
    contact_asked = bool(CONTACT_ASKED.search(question))
    reading_asked = bool(READING_ASKED.search(question))
    for h_index, hit in enumerate(hits):
        section = (hit.chunk.metadata.get("section") or "").lower()
        if section == "contact" and not contact_asked:
            continue  # « Chargée de mission … (fictive) » answers nothing unless a contact is asked for
        if section == "pour aller plus loin" and not reading_asked:
            continue  # a reading list, quoted only when the question asks for texts or resources
        section_terms = set(analyse(section)) | set(analyse(str(hit.chunk.metadata.get("title", ""))))
        speakers = hit.chunk.metadata.get("speakers") or []
        interviewer = str(speakers[0]) if hit.chunk.metadata.get("doc_type") == "entretien" and speakers else None
        for position, (text, is_step) in enumerate(units_of(hit.chunk.text, interviewer)):
            terms = set(analyse(text))
            overlap = sum(weight[t] for t in q_terms & terms)
            context = 0.5 * sum(weight[t] for t in q_terms & section_terms)  # the section matches the question
            step_bonus = 1.0 if procedural and (is_step or "étape" in section) else 0.0
            bonus = step_bonus + (FOCUS_BONUS if hit.chunk.id in focus else 0.0)
            score = (overlap + context) * (1.0 / (1 + RANK_DECAY * h_index)) + bonus
            if overlap + context + bonus > 0:
                candidates.append(Unit(h_index, position, text, terms, is_step, score))
    chosen: list[Unit] = []
    sources: list[int] = []
    # always quoted: the two best-ranked retrieved passages (the most likely to hold the answer; the
    # passages that assistant.focus added have score 0), then the first focus passages (the
    # section the question asks about)
    focused = [i for i, hit in enumerate(hits) if hit.chunk.id in focus][:FOCUS_QUOTED]
    retrieved = [i for i, hit in enumerate(hits) if hit.score > 0][:TOP_QUOTED]  # added passages score 0
    for h_index in [0, *retrieved, *focused]:
        mine = [u for u in candidates if u.hit_index == h_index]
        if mine:
            best = max(mine, key=lambda u: u.score)
            if best not in chosen:
                chosen.append(best)
                if h_index not in sources:
                    sources.append(h_index)
    for unit in sorted(candidates, key=lambda u: -u.score):
        if unit in chosen:
            continue
        if len(chosen) >= MAX_POINTS:
            break
        if unit.hit_index not in sources and len(sources) >= MAX_SOURCES:
            continue
        if any(_similar(unit.terms, other.terms) for other in chosen):
            continue
        chosen.append(unit)
        if unit.hit_index not in sources:
            sources.append(unit.hit_index)
    if procedural:  # keep the steps of the best passage together, in order
        best = chosen[0].hit_index if chosen else None
        steps = [u for u in candidates if u.hit_index == best and u.is_step and u not in chosen]
        for unit in steps[: max(0, MAX_POINTS + 2 - len(chosen))]:
            if not any(_similar(unit.terms, other.terms) for other in chosen):
                chosen.append(unit)
    order = {h: i for i, h in enumerate(sources)}
    return sorted(chosen, key=lambda u: (order[u.hit_index], u.position))


def _local_weights(q_terms: set[str], hits: list[Hit], idf: Callable[[str], float]) -> dict[str, float]:
    """idf of each question term, lowered when most of the passages contain it: in « qui finance un
    tiers-lieu ? » every passage speaks of the tiers-lieu, the sentence to quote is the one about
    funding."""
    if LOCAL_WEIGHT <= 0 or len(hits) < 2:
        return {t: idf(t) for t in q_terms}
    texts = [set(analyse(h.chunk.text)) for h in hits]
    n = len(texts)
    out: dict[str, float] = {}
    for t in q_terms:
        df = max(1, sum(t in x for x in texts))
        local = math.log(1 + n / df) / math.log(1 + n)
        out[t] = idf(t) * ((1 - LOCAL_WEIGHT) + LOCAL_WEIGHT * local)
    return out


def _similar(a: set[str], b: set[str]) -> bool:
    if not a or not b:
        return False
    return len(a & b) / len(a | b) > 0.6


def compose(question: str, hits: list[Hit], idf: Callable[[str], float],
            focus: frozenset[str] = frozenset()) -> tuple[str, list[Hit]]:
    """Markdown answer and the hits it cites (citation n = position + 1). Empty text when nothing fits."""
    units = select_units(question, hits, idf, focus)
    if not units:
        return "", []
    cited: list[int] = []
    for unit in units:
        if unit.hit_index not in cited:
            cited.append(unit.hit_index)
    number = {h: i + 1 for i, h in enumerate(cited)}
    used = [hits[h] for h in cited]
    lead_source = used[0].chunk.metadata
    lead = "D'après les documents du centre de ressources"
    if lead_source.get("doc_type") == "fiche_outil":
        lead = f"D'après la fiche « {lead_source.get('title')} »" + (" et d'autres documents du centre" if len(used) > 1 else "")
    lines = [lead + " :", ""]
    for unit in units:
        lines.append(f"- {_clean(unit.text)} [{number[unit.hit_index]}]")
    lines += ["", "**Pour aller plus loin**", ""]
    # two passages of the same section and page are one line: « - [1] [2] Titre (Étapes pour lancer) »
    listed: dict[str, list[int]] = {}
    for i, hit in enumerate(used, start=1):
        meta = hit.chunk.metadata
        where = ", ".join(x for x in (meta.get("section"), f"p. {meta['page']}" if meta.get("page") else None) if x)
        mark = " — *exemple fictif*" if meta.get("illustrative") else ""
        listed.setdefault(f"{meta.get('title')}" + (f" ({where})" if where else "") + f", `{meta.get('source')}`{mark}",
                          []).append(i)
    lines += ["- " + " ".join(f"[{n}]" for n in numbers) + f" {entry}" for entry, numbers in listed.items()]
    return "\n".join(lines), used
