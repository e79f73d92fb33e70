"""Citation markers ``[n]`` in answers, and the lexical support rule, shared by the LLM answer check
(``assistant.llm``) and the evals (``assistant.evals.metrics``) so that both judge alike.

Usage::

    markers("Une phrase [1, 3] et [2].")                 # [1, 3, 2]
    support_share({"conseil", "citoyen"}, {"conseil"})    # 0.5, compared with SUPPORT_THRESHOLD
"""

from __future__ import annotations

import re

SUPPORT_THRESHOLD = 0.6  # share of a sentence's content terms that its cited passage(s) must contain
MARKER = re.compile(r"\[(\d+(?:\s*[,;]\s*\d+)*)\]")


def markers(text: str) -> list[int]:
    """Passage numbers cited in ``text``, in order (``[1]``, ``[1, 2]``, ``[1;3]``)."""
    return [int(n) for group in MARKER.findall(text) for n in re.split(r"\s*[,;]\s*", group)]


def support_share(terms: set[str], passage_terms: set[str]) -> float:
    """Share of ``terms`` found in ``passage_terms`` (0 when there are no terms)."""
    return len(terms & passage_terms) / len(terms) if terms else 0.0
