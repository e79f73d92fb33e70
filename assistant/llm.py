"""The language model stage: prompts as files, a chat model chosen by a setting, and checked answers.

- ``load_prompt(name, **values)`` renders ``prompts/<name>.md``; a missing variable raises ``PromptError``.
- ``get_chat_model(settings)`` returns a LangChain chat model (OpenAI-compatible endpoint: Albert, vLLM,
  Mistral, LM Studio, llama_cpp.server; or Ollama; or the offline ``FakeChatModel``), or ``None``.
- ``generate(question, citations, chat_model)`` asks the model to answer from the numbered passages,
  streams its tokens, then CHECKS the answer: every sentence must cite existing passages ``[n]`` that
  support it (share of its content terms found in the cited passages >= ``SUPPORT_THRESHOLD``, and
  every number it states found there). Unsupported sentences are dropped. When the model fails, is too
  slow, or most of its answer is unsupported, ``ok`` is False and ``note`` says why in French: the
  caller then serves the built-in composer's answer with that note.
- ``rewrite(question, history, chat_model)`` turns a follow-up into one standalone question.

Usage::

    from assistant.llm import generate, get_chat_model, rewrite
    model = get_chat_model(settings)                 # None when ASSISTANT_LLM=none
    if model is not None:
        question = "Et pour les quartiers ?"
        standalone = rewrite(question, ["Comment lancer un conseil citoyen ?"], model) or question
        result = generate(standalone, citations, model, on_token=print)
        if result.ok:
            text = result.text                       # checked Markdown with [n] markers
        else:
            text, note = composed_answer, result.note  # built-in composer + French note

The tokens given to ``on_token`` are the model's raw output, before the check: a front end that shows
them live must replace them by ``result.text`` (or the composer's answer) at the end.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field

from assistant.chunking import split_sentences
from assistant.citations import MARKER, SUPPORT_THRESHOLD, markers, support_share
from assistant.errors import AssistantError
from assistant.settings import Settings
from assistant.store.lexical import analyse
from assistant.types import Citation

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
MAX_DROPPED_SHARE = 0.5  # more than this share of sentences dropped -> the answer is refused
MAX_REWRITE_CHARS = 300
DEFAULT_TIMEOUT_S = 30.0
OLLAMA_DEFAULT_URL = "http://127.0.0.1:11434"
TIMEOUT_KEY = "llm_timeout_s"  # where get_chat_model stores the wall-clock timeout (model.metadata)

FALLBACK = "réponse composée à partir des passages."
NOTE_TIMEOUT = f"Le modèle de langage n'a pas répondu à temps : {FALLBACK}"
NOTE_ERROR = f"Le modèle de langage est indisponible : {FALLBACK}"
NOTE_EMPTY = f"Le modèle de langage n'a pas donné de réponse vérifiable : {FALLBACK}"
NOTE_UNSUPPORTED = (
    f"La réponse du modèle de langage n'était pas assez appuyée sur les passages cités : {FALLBACK}"
)
NOTE_NO_PASSAGE = f"Aucun passage à transmettre au modèle de langage : {FALLBACK}"

LEADING_MARKERS = re.compile(r"^((?:\[\d+(?:\s*[,;]\s*\d+)*\]\s*)+)(.*)$", re.DOTALL)
HEADING_LINE = re.compile(r"^\s*#{1,6}\s+\S")
BULLET = re.compile(r"^(\s*(?:[-*•+]|\d+[.)])\s+)(.*)$")
# Words used to talk about the sources rather than about the subject: never count against support.
META_TERMS = frozenset(analyse("exemple fictif illustratif illustrative passage source extrait selon d'après"))


class PromptError(AssistantError, KeyError):
    """A prompt file is missing or a placeholder has no value. ``str()`` is a French sentence."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# --------------------------------------------------------------------------------------------- prompts


class _Values(dict):
    """Mapping for ``str.format_map`` that fails loudly on a placeholder without a value."""

    def __init__(self, values: dict[str, str], name: str) -> None:
        super().__init__(values)
        self.name = name

    def __missing__(self, key: str) -> str:
        raise PromptError(
            f"La consigne prompts/{self.name}.md attend la variable {{{key}}}, qui n'a pas reçu de valeur."
        )


def load_prompt(name: str, **values: str) -> str:
    """Read ``prompts/<name>.md`` and fill its ``{variable}`` placeholders (``{{``/``}}`` = literal braces).

    A placeholder without a value raises ``PromptError`` naming the variable and the file; values that
    the file does not use are ignored.
    """
    path = PROMPTS_DIR / f"{name}.md"
    try:
        template = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptError(f"Fichier de consigne introuvable ou illisible : {path} ({exc.strerror}).") from None
    try:
        return template.format_map(_Values(values, name))
    except PromptError:
        raise
    except (ValueError, IndexError, AttributeError) as exc:
        raise PromptError(
            f"La consigne prompts/{name}.md est mal formée ({exc}) : écrivez {{{{ et }}}} pour des accolades."
        ) from None


# ---------------------------------------------------------------------------------------------- models


class FakeChatModel(BaseChatModel):
    """FAKE chat model, for tests and offline demos only: it answers canned text, never a real model.

    ``responses`` is a list of texts served in turn (cycling), or a callable ``messages -> text``.
    ``error`` is raised on every call when set; ``sleep_s`` delays the first token (timeout tests).
    ``received`` records the messages of every call, for prompt tests. Streaming yields word by word.

    Usage::

        fake = FakeChatModel(responses=["Réponse courte [1]."])
        fake.invoke("Bonjour").content          # 'Réponse courte [1].'
    """

    responses: list[str] | Callable[[list[BaseMessage]], str] = Field(
        default_factory=lambda: ["Les passages fournis ne permettent pas de répondre à cette question."]
    )
    error: BaseException | None = None
    sleep_s: float = 0.0
    received: list[list[BaseMessage]] = Field(default_factory=list)
    calls: int = 0

    @property
    def _llm_type(self) -> str:
        return "fake-chat-model"

    def _reply(self, messages: list[BaseMessage]) -> str:
        self.received.append(list(messages))
        self.calls += 1
        if self.sleep_s > 0:
            time.sleep(self.sleep_s)
        if self.error is not None:
            raise self.error
        if callable(self.responses):
            return self.responses(messages)
        if not self.responses:
            return ""
        return self.responses[(self.calls - 1) % len(self.responses)]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = self._reply(messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        text = self._reply(messages)
        for piece in re.findall(r"\S+\s*|\s+", text):
            chunk = ChatGenerationChunk(message=AIMessageChunk(content=piece))
            if run_manager:
                run_manager.on_llm_new_token(piece, chunk=chunk)
            yield chunk


def get_chat_model(settings: Settings) -> BaseChatModel | None:
    """The chat model chosen by ``settings.llm`` (``None`` for "none": the built-in composer answers).

    Nothing is contacted here: the first request happens in ``generate`` or ``rewrite``.
    """
    timeout = settings.llm_timeout_s
    metadata = {TIMEOUT_KEY: timeout}
    if settings.llm == "none":
        return None
    if settings.llm == "openai":
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(
            base_url=settings.llm_base_url, api_key=settings.llm_api_key or "sans-cle",
            model=settings.llm_model, timeout=timeout, max_retries=0, temperature=0.1, metadata=metadata,
        )
    if settings.llm == "ollama":
        from langchain_ollama import ChatOllama

        return ChatOllama(
            model=settings.llm_model, base_url=settings.llm_base_url or OLLAMA_DEFAULT_URL,
            temperature=0.1, client_kwargs={"timeout": timeout}, metadata=metadata,
        )
    if settings.llm == "fake":
        return FakeChatModel(metadata=metadata)
    raise AssistantError(f"ASSISTANT_LLM={settings.llm!r} inconnu : choisissez none, openai, ollama ou fake.")


def _timeout_of(chat_model: BaseChatModel, timeout_s: float | None) -> float:
    if timeout_s is not None:
        return timeout_s
    value = (chat_model.metadata or {}).get(TIMEOUT_KEY)
    return float(value) if isinstance(value, int | float) else DEFAULT_TIMEOUT_S


class _Timeout(Exception):
    pass


def _stream_with_deadline(
    chat_model: BaseChatModel, messages: list[BaseMessage], timeout_s: float,
    on_token: Callable[[str], None] | None = None,
) -> str:
    """Stream the model's answer in a worker thread; give up after ``timeout_s`` seconds of wall clock.

    ``on_token`` is called in the caller's thread. On time-out the worker is abandoned (daemon thread):
    its HTTP client has its own timeout and ends it.
    """
    pieces: queue.Queue[tuple[str, Any]] = queue.Queue()

    def work() -> None:
        try:
            for chunk in chat_model.stream(messages):
                pieces.put(("token", chunk.text))
            pieces.put(("done", None))
        except BaseException as exc:  # handed over to the caller's thread
            pieces.put(("error", exc))

    threading.Thread(target=work, name="llm-stream", daemon=True).start()
    deadline = time.monotonic() + timeout_s
    parts: list[str] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        try:
            kind, value = pieces.get(timeout=remaining)
        except queue.Empty:
            raise _Timeout from None
        if kind == "done":
            return "".join(parts)
        if kind == "error":
            raise value
        if value:
            parts.append(value)
            if on_token is not None:
                on_token(value)


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, _Timeout | TimeoutError):
        return True
    return "timeout" in type(exc).__name__.lower() or "timed out" in str(exc).lower()


# -------------------------------------------------------------------------------------------- generate


@dataclass
class LlmResult:
    """What ``generate`` returns. ``text`` is the checked answer (None when ``ok`` is False)."""

    text: str | None
    ok: bool
    note: str | None
    dropped: list[str] = field(default_factory=list)
    raw: str = ""


def format_passages(citations: Sequence[Citation]) -> str:
    """The numbered passages as shown to the model: ``[1] Titre — section (p. 3)`` then the text."""
    blocks = []
    for c in citations:
        header = f"[{c.n}] {c.title or c.source}"
        if c.section:
            header += f" — {c.section}"
        if c.page is not None:
            header += f" (p. {c.page})"
        if c.illustrative:
            header += " (exemple fictif)"
        blocks.append(f"{header}\n{c.text.strip()}")
    return "\n\n".join(blocks)


def _sentences(text: str) -> list[str]:
    """``split_sentences``, with markers written after the full stop (« … citoyens. [1] ») kept with
    the sentence they close."""
    out: list[str] = []
    for part in split_sentences(text):
        lead = LEADING_MARKERS.match(part)
        if lead and out:
            out[-1] = f"{out[-1]} {lead.group(1).strip()}"
            part = lead.group(2).strip()
            if not part:
                continue
        out.append(part)
    return [s for s in out if s]


@dataclass
class _Check:
    lines: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    checked: int = 0  # sentences subject to the check
    factual_kept: int = 0


def _passage_terms(citations: Sequence[Citation]) -> dict[int, set[str]]:
    return {
        c.n: set(analyse(" ".join(x for x in (c.title, c.section or "", c.text) if x))) for c in citations
    }


def _judge(sentence: str, terms_of: dict[int, set[str]]) -> tuple[bool, bool]:
    """(keep, factual) for one sentence."""
    cited = markers(sentence)
    if any(n not in terms_of for n in cited):
        return False, True
    bare = MARKER.sub(" ", sentence).strip()
    terms = set(analyse(bare)) - META_TERMS
    if not terms:
        return True, False  # states nothing
    if not cited:
        lead = bare.endswith(":") and not re.search(r"\d", bare)
        return lead, not lead
    support = set().union(*(terms_of[n] for n in cited))
    numbers = {t for t in terms if t[:1].isdigit()}
    if not numbers <= support:
        return False, True
    return support_share(terms, support) >= SUPPORT_THRESHOLD, True


def check_answer(text: str, citations: Sequence[Citation]) -> tuple[str, list[str], int, int]:
    """Check a model answer against the passages: (kept text, dropped sentences, checked, factual kept).

    Sentences citing a passage that does not exist, without a citation while stating something, or
    not supported by the passages they cite (see ``SUPPORT_THRESHOLD``, and every number they state
    must appear in a cited passage) are dropped. Headings and lead lines ending with « : » pass.
    """
    terms_of = _passage_terms(citations)
    state = _Check()
    for line in text.replace("\r\n", "\n").split("\n"):
        if not line.strip():
            if state.lines and state.lines[-1]:
                state.lines.append("")
            continue
        if HEADING_LINE.match(line):
            if not [n for n in markers(line) if n not in terms_of]:
                state.lines.append(line.rstrip())
            else:
                state.dropped.append(line.strip())
            continue
        bullet = BULLET.match(line)
        prefix, body = (bullet.group(1), bullet.group(2)) if bullet else ("", line.strip())
        kept = []
        for sentence in _sentences(body):
            state.checked += 1
            keep, factual = _judge(sentence, terms_of)
            if keep:
                kept.append(sentence)
                state.factual_kept += factual
            else:
                state.dropped.append(sentence)
        if kept:
            state.lines.append(prefix + " ".join(kept))
    while state.lines and not state.lines[-1]:
        state.lines.pop()
    return "\n".join(state.lines).strip(), state.dropped, state.checked, state.factual_kept


def generate(
    question: str,
    citations: list[Citation],
    chat_model: BaseChatModel,
    on_token: Callable[[str], None] | None = None,
    *,
    timeout_s: float | None = None,
) -> LlmResult:
    """Ask the model to answer ``question`` from the numbered ``citations``, then check the answer.

    ``timeout_s`` bounds the whole call in wall-clock time (default: the ``ASSISTANT_LLM_TIMEOUT_S``
    recorded by ``get_chat_model``, else 30 s). Never raises for a model failure: see ``LlmResult``.
    """
    if not citations:
        return LlmResult(text=None, ok=False, note=NOTE_NO_PASSAGE, dropped=[], raw="")
    messages: list[BaseMessage] = [
        SystemMessage(content=load_prompt("system")),
        HumanMessage(content=load_prompt("answer", question=question.strip(),
                                         passages=format_passages(citations))),
    ]
    try:
        raw = _stream_with_deadline(chat_model, messages, _timeout_of(chat_model, timeout_s), on_token)
    except Exception as exc:  # any model failure falls back to the composer
        timed_out = _is_timeout(exc)
        log.warning("Échec du modèle de langage (%s) : %r", "délai dépassé" if timed_out else "erreur", exc)
        return LlmResult(text=None, ok=False, note=NOTE_TIMEOUT if timed_out else NOTE_ERROR, raw="")
    text, dropped, checked, factual_kept = check_answer(raw, citations)
    if not text or factual_kept == 0:
        return LlmResult(text=None, ok=False, note=NOTE_EMPTY, dropped=dropped, raw=raw)
    if checked and len(dropped) > MAX_DROPPED_SHARE * checked:
        return LlmResult(text=None, ok=False, note=NOTE_UNSUPPORTED, dropped=dropped, raw=raw)
    note = None
    if dropped:
        n = len(dropped)
        note = (f"{n} phrase{'s' if n > 1 else ''} de la réponse du modèle, non appuyée{'s' if n > 1 else ''} "
                f"par les passages cités, {'ont' if n > 1 else 'a'} été retirée{'s' if n > 1 else ''}.")
    return LlmResult(text=text, ok=True, note=note, dropped=dropped, raw=raw)


# --------------------------------------------------------------------------------------------- rewrite


def rewrite(
    question: str, history: list[str], chat_model: BaseChatModel, *, timeout_s: float | None = None,
) -> str | None:
    """One standalone French question from a follow-up and the previous user questions.

    Returns the model's first non-empty line, stripped (and unquoted), or ``None`` on any error, an
    empty answer or one longer than 300 characters. With no history there is nothing to rewrite: the
    question itself is returned without calling the model.
    """
    if not any(h.strip() for h in history):
        return question.strip() or None
    numbered = "\n".join(f"{i}. {h.strip()}" for i, h in enumerate((h for h in history if h.strip()), 1))
    try:
        prompt = load_prompt("rewrite", history=numbered, question=question.strip())
        raw = _stream_with_deadline(chat_model, [HumanMessage(content=prompt)],
                                    _timeout_of(chat_model, timeout_s))
    except Exception as exc:  # the caller keeps the original question
        log.warning("Réécriture de la question impossible : %r", exc)
        return None
    line = next((x.strip() for x in raw.splitlines() if x.strip()), "")
    line = line.strip("\"'«» \u00a0").strip()
    if not line or len(line) > MAX_REWRITE_CHARS:
        return None
    return line
