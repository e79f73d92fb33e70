"""Command line: ``assistant ingest | ask | models``. Domain errors become one French message here."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

from assistant.errors import AssistantError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _settings(args: argparse.Namespace) -> object:
    from assistant.settings import load_settings

    overrides = {}
    if getattr(args, "corpus", None):
        overrides["corpus_dir"] = Path(args.corpus)
    if getattr(args, "index", None):
        overrides["index_dir"] = Path(args.index)
    return load_settings(**overrides)


def cmd_ingest(args: argparse.Namespace) -> int:
    from assistant.ingest import ingest

    settings = _settings(args)
    report = ingest(settings.corpus_dir, settings.index_dir, settings, progress=not args.quiet)
    if args.json:
        print(json.dumps(report.as_dict(), ensure_ascii=False))
    else:
        print(report.summary())
    return 0 if report.usable else 1


def _print_answer(result: object) -> None:
    from rich.console import Console
    from rich.markdown import Markdown

    console = Console()
    console.print(Markdown(result.answer))
    for c in result.citations:
        where = ", ".join(x for x in (c.section, f"p. {c.page}" if c.page else None) if x)
        mark = " [bold yellow](exemple fictif)[/]" if c.illustrative else ""
        console.print(f"[dim][{c.n}] {c.source}{' — ' + where if where else ''}{mark}[/]")


def cmd_ask(args: argparse.Namespace) -> int:
    from assistant.answer import answer
    from assistant.retrieve import open_index

    settings = _settings(args)
    index = open_index(settings, settings.index_dir)

    def one(question: str) -> None:
        result = answer(question, index=index)
        if args.json:
            print(json.dumps(dataclasses.asdict(result), ensure_ascii=False), flush=True)
        else:
            _print_answer(result)

    if args.question:
        one(" ".join(args.question))
        return 0
    interactive = sys.stdin.isatty() and not args.json
    if interactive:
        print("Posez votre question (ligne vide ou Ctrl-D pour quitter).")
    while True:
        try:
            line = input("> ") if interactive else sys.stdin.readline()
        except EOFError:
            break
        if not line:
            break
        if line.strip():
            one(line.strip())
        elif interactive:
            break
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from assistant.embedders import get_embedder

    settings = _settings(args)
    embedder = get_embedder(settings)
    print(f"Modèle prêt : {embedder.name} (dimension {embedder.dim}, séquence max {embedder.max_tokens} jetons).")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="assistant", description="Assistant du dialogue territorial (PQN-A)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", help="construire ou mettre à jour l'index")
    p.add_argument("--corpus", help="dossier du corpus (défaut : réglage ASSISTANT_CORPUS_DIR)")
    p.add_argument("--index", help="dossier de l'index (défaut : ASSISTANT_INDEX_DIR)")
    p.add_argument("--json", action="store_true", help="résumé en JSON")
    p.add_argument("--quiet", action="store_true", help="sans barre de progression")
    p.set_defaults(func=cmd_ingest)
    p = sub.add_parser("ask", help="poser une question (sans question : une par ligne sur l'entrée)")
    p.add_argument("question", nargs="*")
    p.add_argument("--index")
    p.add_argument("--json", action="store_true", help="un objet JSON par question (JSON Lines)")
    p.set_defaults(func=cmd_ask)
    p = sub.add_parser("models", help="préparer le modèle d'embedding (conversion hors ligne)")
    p.set_defaults(func=cmd_models)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except AssistantError as exc:
        print(f"Erreur : {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("Interrompu.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
