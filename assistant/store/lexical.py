"""Lexical retrieval: BM25 over French-stemmed terms.

Analysis: Unicode NFC, lower case, elisions split (« l'emploi » -> « emploi »), French stop words
removed, Snowball French stemmer (PyStemmer), then accents stripped so that « developpement » and
« développement » meet. Acronyms (QPV, PETR, EPCI) stay whole as single lower-case terms.

The analysed terms of every chunk are stored in the manifest (SQLite); ``Bm25Index`` is built from
them and cached on disk in ``lexical.pkl``, stamped with the manifest generation.

Usage::

    terms = analyse("Comment lancer les conseils citoyens ?")   # ['lanc', 'conseil', 'citoyen']
    index = Bm25Index.build(ids, list_of_terms)
    index.search(terms, k=10)                                  # -> [(id, score)]
"""

from __future__ import annotations

import math
import pickle
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

STOP_WORDS = frozenset("""
a afin ai aie aient aies ait alors as au aucun aucune aupres auquel aura aurai auraient aurais aurait
auras aurez auriez aurions aurons auront aussi autre autres aux auxquelles auxquels avaient avais avait
avant avec avez aviez avions avoir avons ayant ayez ayons c ca ce ceci cela celle celles celui cependant
ces cet cette ceux chacun chacune chaque chez ci comme comment d dans de des desquelles desquels deux
devrait doit donc dont du duquel elle elles en encore entre es est et etaient etais etait etant ete etes
etiez etions etre eu eue eues eumes eurent eus eusse eussent eusses eussiez eussions eut eutes eux fait
faut fois furent fus fusse fussent fusses fussiez fussions fut futes ici il ils j je jusqu l la laquelle
le lequel les lesquelles lesquels leur leurs lors lorsque lui m ma mais me meme memes mes moi mon n ne
ni nos notre nous on ont ou par parce pas peu peut peuvent plus pour pourquoi puis qu quand que quel
quelle quelles quels qui quoi s sa sans se sera serai seraient serais serait seras serez seriez serions
serons seront ses si sien sienne soi soient sois soit sommes son sont sous soyez soyons suis sur t ta
tandis te tes toi ton tous tout toute toutes tres tu un une unes uns vers via voici voila vos votre vous
vu y est-ce qu'est-ce c'est quoi faire fais font
""".split())
ANALYSER_VERSION = "fr-snowball-1"
WORDS_VERSION = 2  # what the typo corrector knows of the corpus: 2 = words and hyphenated compounds
TOKEN = re.compile(r"[0-9]+(?:[.,][0-9]+)*|[^\W\d_]+(?:-[^\W\d_]+)*", re.UNICODE)
WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
COMPOUND = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)+", re.UNICODE)
SENTENCE_START = re.compile(r"(?:^|[.!?:;«\"(]\s*)$")
ALPHABET = "abcdefghijklmnopqrstuvwxyz"
ELISION = re.compile(r"\b(?:[ldjmnstc]|qu|jusqu|lorsqu|puisqu|quoiqu)['’]", re.IGNORECASE)


def strip_accents(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def _edits1(word: str) -> set[str]:
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = [a + b[1:] for a, b in splits if b]
    transposes = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
    replaces = [a + c + b[1:] for a, b in splits if b for c in ALPHABET]
    inserts = [a + c + b for a, b in splits for c in ALPHABET]
    return set(deletes + transposes + replaces + inserts)


def surface_words(text: str) -> list[str]:
    """Accent-free lower-case words of a text (the vocabulary used for typo correction)."""
    return [strip_accents(w.lower()) for w in WORD.findall(text)]


def compound_words(text: str) -> list[str]:
    """Accent-free lower-case hyphenated words of a text (« co-construction », « porte-à-porte »)."""
    return [strip_accents(w.lower()) for w in COMPOUND.findall(text)]


@lru_cache(maxsize=1)
def french_words() -> frozenset[str]:
    """Accent-free lower-case words of a French dictionary (pyspellchecker's, about 134 000 forms,
    inflections included; loaded once, about 0.5 s): the typo corrector leaves these words alone."""
    from spellchecker import SpellChecker

    return frozenset(strip_accents(w) for w in SpellChecker(language="fr", distance=1).word_frequency.keys())


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("french")


def analyse(text: str) -> list[str]:
    """Text -> list of index terms (see the module docstring)."""
    text = ELISION.sub(" ", unicodedata.normalize("NFC", text))
    words = []
    for match in TOKEN.finditer(text):
        raw = match.group(0)
        for part in raw.split("-") if "-" in raw and not raw.isupper() else [raw]:
            if part.isupper() and 2 <= len(part) <= 8:  # acronym: keep whole
                words.append(strip_accents(part.lower()))
                continue
            low = part.lower()
            if strip_accents(low) in STOP_WORDS or len(low) < 2 and not low.isdigit():
                continue
            words.append(low)
    stemmed = _stemmer().stemWords(words)
    return [strip_accents(w) for w in stemmed]


@dataclass
class Bm25Index:
    """Okapi BM25 (k1=1.2, b=0.75) over a sparse term-by-chunk matrix."""

    ids: list[str]
    vocab: dict[str, int]
    matrix: Any  # scipy.sparse.csc_matrix (terms x docs) of BM25 term weights
    idf: np.ndarray
    generation: int = 0
    words: dict[str, int] = field(default_factory=dict)  # surface words (accent-free) -> frequency
    compounds: dict[str, str] = field(default_factory=dict)  # « coconstruction » -> « co-construction »
    words_version: int = 0  # WORDS_VERSION when ``words`` and ``compounds`` were computed

    @classmethod
    def build(cls, ids: list[str], docs: list[list[str]], k1: float = 1.2, b: float = 0.75,
              generation: int = 0) -> Bm25Index:
        from scipy.sparse import csc_matrix

        vocab: dict[str, int] = {}
        rows, cols, vals = [], [], []
        lengths = np.array([len(d) for d in docs], dtype=np.float32)
        avg = float(lengths.mean()) if len(docs) else 1.0
        df: Counter[int] = Counter()
        for j, terms in enumerate(docs):
            counts = Counter(terms)
            norm = k1 * (1 - b + b * (lengths[j] / avg if avg else 1.0))
            for term, tf in counts.items():
                t = vocab.setdefault(term, len(vocab))
                df[t] += 1
                rows.append(t)
                cols.append(j)
                vals.append(tf * (k1 + 1) / (tf + norm))
        n = len(docs)
        idf = np.zeros(len(vocab), dtype=np.float32)
        for t, d in df.items():
            idf[t] = math.log(1 + (n - d + 0.5) / (d + 0.5))
        matrix = csc_matrix((np.array(vals, dtype=np.float32), (rows, cols)), shape=(len(vocab), n)).tocsr()
        return cls(ids, vocab, matrix, idf, generation)

    def correct(self, text: str) -> str:
        """Fix typos against the corpus's own words. A word of 4+ letters is left alone when the
        corpus or a French dictionary knows it (accents ignored: « legalement », « mêlent », « tarte »),
        when it is an acronym, or when it is a capitalised name inside a sentence (« Bègles »).
        Otherwise a hyphen-less compound of the corpus gets its hyphen back (« coconstruction » ->
        « co-construction »), and any other word is replaced by the most frequent corpus word at edit
        distance 1 (« habitans » -> « habitants », « coment » -> « comment »)."""
        if not self.words:
            return text
        known = french_words()

        def fix(match: re.Match[str]) -> str:
            word = match.group(0)
            plain = strip_accents(word.lower())
            if len(plain) < 4 or plain in self.words or plain in STOP_WORDS or word.isupper() or plain in known:
                return word
            if word[0].isupper() and not SENTENCE_START.search(text[:match.start()]):
                return word  # a name: « à Bègles »
            if plain in self.compounds:
                return self.compounds[plain]
            candidates = [w for w in _edits1(plain) if w in self.words]
            return max(candidates, key=lambda w: self.words[w]) if candidates else word

        return WORD.sub(fix, text)

    def search(self, terms: list[str], k: int, allowed: set[str] | None = None,
               boost: dict[str, float] | None = None) -> list[tuple[str, float]]:
        """Top ``k`` (id, score) for the query terms; ``allowed`` restricts to a set of ids; ``boost``
        multiplies the weight of some terms (below 1: the glossary's expansion terms)."""
        present = [t for t in set(terms) if t in self.vocab]
        if not present or not self.ids:
            return []
        idx = [self.vocab[t] for t in present]
        weights = self.idf[idx] * np.array([(boost or {}).get(t, 1.0) for t in present])
        scores = np.asarray(self.matrix[idx].T @ weights).ravel()
        order = np.argsort(-scores)
        out = []
        for j in order:
            if scores[j] <= 0:
                break
            if allowed is None or self.ids[j] in allowed:
                out.append((self.ids[j], float(scores[j])))
                if len(out) >= k:
                    break
        return out

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)

    @staticmethod
    def load(path: Path) -> Bm25Index | None:
        try:
            with path.open("rb") as fh:
                obj = pickle.load(fh)  # noqa: S301 - our own cache file in the index folder
            return obj if isinstance(obj, Bm25Index) else None
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            return None
