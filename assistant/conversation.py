"""Follow-up questions -> standalone questions.

With a language model configured, the model rewrites the follow-up (``assistant.llm.rewrite``).
Without one, a documented heuristic is used:

1. A question is a follow-up when there is a history AND it starts with a linking word
   (« et », « mais », « sinon », « aussi », « du coup »…) or refers back (« ça », « cela », « ce
   dispositif », « il », « elle », « eux »…), or it is short (three content terms or fewer) and
   it names no acronym (QPV, PETR…) and shares no term with the previous question.
2. The topic of the previous question is its text minus the question words and generic verbs
   (« comment lancer un conseil citoyen ? » -> « conseil citoyen »).
3. The standalone question is « <follow-up> (à propos de : <topic>) », which keeps the user's words
   and gives retrieval the terms of the topic.

Usage::

    standalone_question("et qui finance ?", ["comment lancer un budget participatif ?"])
    # -> "et qui finance ? (à propos de : budget participatif)"
"""

from __future__ import annotations

import re

from assistant.store.lexical import analyse

ACRONYM = re.compile(r"\b[A-Z]{2,8}\b")
LINK = re.compile(r"^\s*(et|mais|sinon|aussi|du coup|alors|puis|ensuite|pareil|idem|même chose)\b", re.I)
BACKREF = re.compile(r"\b(ça|cela|ceci|ce dispositif|cette démarche|cette instance|il|elle|ils|elles|eux|le faire|en parler|y|dedans)\b", re.I)
QUESTION_WORDS = re.compile(
    r"\b(comment|pourquoi|quand|quel(le)?s?|qu'est[- ]ce que|qu'est[- ]ce qu'|est[- ]ce que|c'est quoi|c'est|c est|c|"
    r"quoi|qui|où|combien|peut[- ]on|faut[- ]il|dois[- ]je|je|on|nous|vous|lancer|créer|monter|mettre en place|"
    r"organiser|faire|démarrer|animer|financer|expliquer|explique|dis[- ]moi|savoir|un|une|le|la|les|des|du|de|d'|l')\b",
    re.I,
)


def topic_of(question: str) -> str:
    """The subject of a question, without its question words (see the module docstring)."""
    text = QUESTION_WORDS.sub(" ", question)
    text = re.sub(r"[?!.,;:«»\"]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def is_follow_up(question: str, history: list[str]) -> bool:
    if not history:
        return False
    if LINK.match(question) or BACKREF.search(question):
        return True
    if ACRONYM.search(question):
        return False
    terms = set(analyse(topic_of(question)))
    previous = set(analyse(topic_of(history[-1])))
    return len(terms) <= 1 and not (terms & previous)


def standalone_question(question: str, history: list[str] | None) -> str:
    """The question rewritten with the history by the heuristic, or the question itself."""
    history = [h for h in (history or []) if h and h.strip()]
    if not is_follow_up(question, history):
        return question
    for previous in reversed(history):
        topic = topic_of(previous)
        if topic:
            return f"{question.strip()} (à propos de : {topic})"
    return question
