from __future__ import annotations

import time

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from assistant import llm
from assistant.llm import (
    NOTE_ERROR,
    NOTE_TIMEOUT,
    NOTE_UNSUPPORTED,
    FakeChatModel,
    LlmResult,
    PromptError,
    generate,
    get_chat_model,
    load_prompt,
    rewrite,
)
from assistant.types import Citation


def cite(n: int, title: str, section: str | None, text: str, page: int | None = None,
         illustrative: bool = False) -> Citation:
    return Citation(n=n, source=f"doc{n}.md", title=title, doc_type="fiche_outil", page=page,
                    section=section, text=text, score=0.5, illustrative=illustrative)


CITATIONS = [
    cite(1, "Lancer un conseil citoyen", "Étapes",
         "Le conseil citoyen réunit des habitants tirés au sort et des acteurs locaux du quartier. "
         "La commune et l'État accompagnent sa création dans chaque quartier prioritaire. "
         "Une formation des membres est proposée dès la première année.", page=3),
    cite(2, "Le conseil de développement du Pays Val d'Adour", None,
         "Le conseil de développement organise des ateliers ouverts aux habitants pour co-construire "
         "le projet de territoire. Les ateliers ont réuni 120 participants en 2023.", illustrative=True),
    cite(3, "Entretien avec une animatrice", "Conseils",
         "La concertation demande du temps : il faut prévoir plusieurs réunions publiques et restituer "
         "les résultats aux habitants."),
]
QUESTION = "Comment lancer un conseil citoyen ?"
GOOD = (
    "Un conseil citoyen réunit des habitants tirés au sort et des acteurs locaux du quartier [1].\n"
    "\n"
    "- La commune et l'État accompagnent sa création dans chaque quartier prioritaire [1].\n"
    "- Dans un exemple fictif, le conseil de développement organise des ateliers ouverts aux habitants [2].\n"
    "- Les ateliers ont réuni 120 participants en 2023 [2].\n"
    "- Il faut prévoir plusieurs réunions publiques et restituer les résultats aux habitants [3]."
)


# ------------------------------------------------------------------------------------------- prompts


def test_prompts_render_with_their_variables():
    answer = load_prompt("answer", question="Q-unique", passages="P-unique", unused="ignoré")
    assert "Q-unique" in answer and "P-unique" in answer and "{" not in answer
    rewritten = load_prompt("rewrite", history="1. H-unique", question="Q-unique")
    assert "H-unique" in rewritten and "Q-unique" in rewritten and "{" not in rewritten
    system = load_prompt("system")
    assert "Pays et Quartiers de Nouvelle-Aquitaine" in system and "[1]" in system


def test_missing_variable_fails_loudly_naming_variable_and_file():
    with pytest.raises(PromptError) as info:
        load_prompt("answer", question="Q")
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert "passages" in message and "answer.md" in message


def test_literal_braces_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr(llm, "PROMPTS_DIR", tmp_path)
    (tmp_path / "t.md").write_text("Format {{\"clé\": \"{valeur}\"}}", encoding="utf-8")
    assert load_prompt("t", valeur="x") == 'Format {"clé": "x"}'
    with pytest.raises(PromptError, match="introuvable"):
        load_prompt("absent")


# ------------------------------------------------------------------------------------------ generate


def test_fake_receives_system_prompt_question_and_numbered_passages():
    fake = FakeChatModel(responses=[GOOD])
    generate(QUESTION, CITATIONS, fake, timeout_s=5)
    (messages,) = fake.received
    assert isinstance(messages[0], SystemMessage) and isinstance(messages[1], HumanMessage)
    assert messages[0].content == load_prompt("system")
    human = messages[1].content
    assert QUESTION in human
    assert "[1] Lancer un conseil citoyen — Étapes (p. 3)\nLe conseil citoyen réunit" in human
    assert "[2] Le conseil de développement du Pays Val d'Adour (exemple fictif)\n" in human
    assert "[3] Entretien avec une animatrice — Conseils\nLa concertation" in human


def test_fake_well_cited_answer_passes_unchanged():
    result = generate(QUESTION, CITATIONS, FakeChatModel(responses=[GOOD]), timeout_s=5)
    assert result == LlmResult(text=GOOD, ok=True, note=None, dropped=[], raw=GOOD)


def test_fake_markers_after_full_stop_and_grouped_markers_are_accepted():
    text = ("Le conseil citoyen réunit des habitants tirés au sort. [1] Il faut prévoir plusieurs réunions "
            "publiques [1, 3].\n- Les ateliers ont réuni 120 participants [2][3].")
    result = generate(QUESTION, CITATIONS, FakeChatModel(responses=[text]), timeout_s=5)
    assert result.ok and result.dropped == [] and result.text == text


def test_fake_sentence_citing_missing_passage_is_dropped():
    bad = "- La commune finance un local dédié au conseil citoyen [7]."
    result = generate(QUESTION, CITATIONS, FakeChatModel(responses=[GOOD + "\n" + bad]), timeout_s=5)
    assert result.ok and result.text == GOOD
    assert result.dropped == ["La commune finance un local dédié au conseil citoyen [7]."]
    assert result.note and "retirée" in result.note


def test_fake_uncited_invented_figure_is_dropped():
    bad = "- Le dispositif coûte 45 000 euros par an."
    result = generate(QUESTION, CITATIONS, FakeChatModel(responses=[GOOD + "\n" + bad]), timeout_s=5)
    assert result.ok and result.text == GOOD
    assert result.dropped == ["Le dispositif coûte 45 000 euros par an."]


def test_fake_cited_figure_absent_from_the_passage_is_dropped():
    bad = "- Les ateliers ont réuni 450 participants en 2023 [2]."
    result = generate(QUESTION, CITATIONS, FakeChatModel(responses=[GOOD + "\n" + bad]), timeout_s=5)
    assert result.text == GOOD and result.dropped == [bad[2:]]


def test_fake_lead_line_ending_with_colon_passes_without_marker():
    text = "Voici les étapes principales :\n- La commune et l'État accompagnent sa création [1]."
    result = generate(QUESTION, CITATIONS, FakeChatModel(responses=[text]), timeout_s=5)
    assert result.ok and result.text == text


def test_fake_mostly_unsupported_answer_is_refused_with_a_note():
    text = (
        "Un conseil citoyen réunit des habitants tirés au sort [1].\n"
        "- La loi Lamy impose un budget participatif annuel obligatoire [1].\n"
        "- Le préfet nomme directement le président du conseil [2].\n"
        "- Les membres perçoivent une indemnité mensuelle versée par la région [3]."
    )
    result = generate(QUESTION, CITATIONS, FakeChatModel(responses=[text]), timeout_s=5)
    assert not result.ok and result.text is None and result.note == NOTE_UNSUPPORTED
    assert len(result.dropped) == 3 and result.raw == text


def test_fake_answer_with_nothing_checkable_is_refused():
    result = generate(QUESTION, CITATIONS, FakeChatModel(responses=["Je ne sais pas, désolé."]), timeout_s=5)
    assert not result.ok and result.text is None and result.note


def test_fake_exception_gives_a_note_not_an_error():
    fake = FakeChatModel(error=ConnectionError("connexion refusée"))
    result = generate(QUESTION, CITATIONS, fake, timeout_s=5)
    assert not result.ok and result.text is None and result.note == NOTE_ERROR


def test_fake_timeout_error_from_the_client_gives_the_timeout_note():
    result = generate(QUESTION, CITATIONS, FakeChatModel(error=TimeoutError("lent")), timeout_s=5)
    assert result.note == NOTE_TIMEOUT


def test_sleeping_fake_beyond_the_timeout_gives_up_on_time(settings_for):
    model = get_chat_model(settings_for(llm="fake", llm_timeout_s=0.3))
    assert isinstance(model, FakeChatModel)
    model.sleep_s = 3.0
    model.responses = [GOOD]
    start = time.monotonic()
    result = generate(QUESTION, CITATIONS, model)
    elapsed = time.monotonic() - start
    assert not result.ok and result.text is None and result.note == NOTE_TIMEOUT
    assert elapsed < 1.5


def test_fake_streaming_calls_on_token_piece_by_piece():
    tokens: list[str] = []
    result = generate(QUESTION, CITATIONS, FakeChatModel(responses=[GOOD]), on_token=tokens.append,
                      timeout_s=5)
    assert len(tokens) > 10
    assert "".join(tokens) == result.raw == GOOD


def test_no_passage_means_no_call():
    fake = FakeChatModel(responses=[GOOD])
    result = generate(QUESTION, [], fake, timeout_s=5)
    assert not result.ok and result.note and fake.calls == 0


# ------------------------------------------------------------------------------------------- rewrite


def test_fake_rewrite_returns_first_line_with_numbered_history():
    fake = FakeChatModel(responses=["  « Comment lancer un conseil citoyen en quartier prioritaire ? »\n"
                                    "Explication inutile."])
    history = ["Qu'est-ce qu'un conseil citoyen ?", "Qui peut en faire partie ?"]
    out = rewrite("Et comment le lancer ?", history, fake, timeout_s=5)
    assert out == "Comment lancer un conseil citoyen en quartier prioritaire ?"
    sent = fake.received[0][-1].content
    assert "1. Qu'est-ce qu'un conseil citoyen ?\n2. Qui peut en faire partie ?" in sent
    assert "Et comment le lancer ?" in sent


def test_fake_rewrite_none_on_error_empty_or_too_long():
    history = ["Qu'est-ce qu'un conseil citoyen ?"]
    assert rewrite("Et ensuite ?", history, FakeChatModel(error=RuntimeError("panne")), timeout_s=5) is None
    assert rewrite("Et ensuite ?", history, FakeChatModel(responses=["  \n "]), timeout_s=5) is None
    assert rewrite("Et ensuite ?", history, FakeChatModel(responses=["x" * 301]), timeout_s=5) is None
    assert rewrite("Et ensuite ?", history, FakeChatModel(sleep_s=2), timeout_s=0.2) is None


def test_fake_rewrite_without_history_keeps_the_question():
    fake = FakeChatModel(responses=["autre"])
    assert rewrite(" Comment lancer un conseil citoyen ? ", [], fake) == "Comment lancer un conseil citoyen ?"
    assert fake.calls == 0


# ------------------------------------------------------------------------------------- chat models


def test_get_chat_model_per_setting(settings_for):
    from langchain_ollama import ChatOllama
    from langchain_openai import ChatOpenAI

    assert get_chat_model(settings_for(llm="none")) is None

    openai = get_chat_model(settings_for(llm="openai", llm_base_url="http://127.0.0.1:9/v1",
                                         llm_model="albert-large", llm_timeout_s=12))
    assert isinstance(openai, ChatOpenAI)
    assert openai.model_name == "albert-large" and openai.openai_api_base == "http://127.0.0.1:9/v1"
    assert openai.max_retries == 0 and openai.request_timeout == 12 and openai.temperature == 0.1
    assert openai.openai_api_key is not None and openai.openai_api_key.get_secret_value() == "sans-cle"

    ollama = get_chat_model(settings_for(llm="ollama", llm_model="mistral", llm_timeout_s=7))
    assert isinstance(ollama, ChatOllama)
    assert ollama.model == "mistral" and ollama.base_url == "http://127.0.0.1:11434"
    assert ollama.client_kwargs == {"timeout": 7} and ollama.temperature == 0.1

    fake = get_chat_model(settings_for(llm="fake"))
    assert isinstance(fake, FakeChatModel) and isinstance(fake, BaseChatModel)


def test_fake_chat_model_is_a_real_langchain_model():
    fake = FakeChatModel(responses=["un", "deux"])
    assert fake.invoke("Bonjour").content == "un"
    assert "".join(c.text for c in fake.stream("Bonjour")) == "deux"
    assert len(fake.received) == 2
    with pytest.raises(ValueError):
        FakeChatModel(error=ValueError("x")).invoke("Bonjour")
    assert FakeChatModel(responses=lambda messages: str(len(messages))).invoke("a").content == "1"
