from __future__ import annotations

import pytest

from assistant.errors import SettingsError
from assistant.settings import load_settings


def test_defaults_work_offline():
    s = load_settings()
    assert s.embedding_model == "multilingual-e5-small-q4" and s.chroma_url == "" and s.llm == "none"


def test_env_and_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("ASSISTANT_CHUNK_TOKENS=300\nASSISTANT_CHROMA_URL=http://127.0.0.1:8000/\n", encoding="utf-8")
    monkeypatch.setenv("ASSISTANT_MAX_FILE_MB", "3")
    s = load_settings()
    assert s.chunk_tokens == 300 and s.chroma_url == "http://127.0.0.1:8000" and s.max_file_mb == 3


@pytest.mark.parametrize("env, name", [
    ({"ASSISTANT_CHUNK_TOKENS": "10"}, "ASSISTANT_CHUNK_TOKENS"),
    ({"ASSISTANT_CHROMA_URL": "localhost:8000"}, "ASSISTANT_CHROMA_URL"),
    ({"ASSISTANT_LLM": "gpt"}, "ASSISTANT_LLM"),
    ({"ASSISTANT_CHUNK_TOKENS": "100", "ASSISTANT_CHUNK_OVERLAP_TOKENS": "100"}, "ASSISTANT_CHUNK_OVERLAP_TOKENS"),
    ({"ASSISTANT_LLM": "openai"}, "ASSISTANT_LLM_BASE_URL"),
])
def test_bad_values_are_named(monkeypatch, env, name):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert name in str(info.value)
