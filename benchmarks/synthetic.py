"""A synthetic French corpus of N Markdown files, for benchmarks and the kill test.

Usage::

    python benchmarks/synthetic.py OUT_DIR 1000
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

SUJETS = ["conseil citoyen", "conseil de développement", "convention citoyenne", "concertation préalable",
          "budget participatif", "écoute territoriale", "tiers-lieu", "projet alimentaire territorial",
          "plan climat", "médiation", "diagnostic partagé", "atlas relationnel"]
ECHELLES = ["quartier", "commune", "intercommunalite", "pays_petr", "departement", "region"]
PHRASES = [
    "Les habitants du {e} se sont réunis {n} fois pour travailler sur le {s}.",
    "L'animatrice a proposé un calendrier partagé et des comptes rendus écrits après chaque séance.",
    "Les élus ont accepté de répondre par écrit aux avis rendus, ce qui a renforcé la confiance.",
    "Le {s} a mobilisé des associations, des agents de la collectivité et des acteurs économiques.",
    "Une difficulté a tenu à la mobilisation des jeunes et des personnes éloignées des institutions.",
    "Le budget annuel comprenait un temps d'animation, la location de salles et l'impression de supports.",
    "Une évaluation participative a été conduite au bout de {n} mois avec les membres volontaires.",
    "Les séances se tenaient en soirée, avec une garde d'enfants proposée aux participants.",
]


def fiche(i: int, rng: random.Random) -> str:
    s = rng.choice(SUJETS)
    e = rng.choice(ECHELLES)
    paras = []
    for _ in range(rng.randint(3, 6)):
        paras.append(" ".join(rng.choice(PHRASES).format(s=s, e=e, n=rng.randint(2, 20)) for _ in range(rng.randint(3, 6))))
    sections = ["Territoire et contexte", "Ce qui a été fait", "Ce qui a marché", "Ce qui n'a pas marché"]
    body = "\n\n".join(f"## {sections[k % 4]}\n\n{p}" for k, p in enumerate(paras))
    return (f"---\ntype: fiche_experience\ntitre: Expérience synthétique {i} : {s}\necheelle: {e}\n"
            f"statut: exemple fictif\n---\n# Expérience synthétique {i} : {s}\n\n{body}\n").replace("echeelle", "echelle")


def write_corpus(out: Path, n: int, seed: int = 7) -> list[Path]:
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        path = out / "fiches-experiences" / f"synthetique-{i:04d}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(fiche(i, rng), encoding="utf-8")
        paths.append(path)
    return paths


if __name__ == "__main__":
    write_corpus(Path(sys.argv[1]), int(sys.argv[2]))
