"""Storage of the index: a vector store (Chroma), a lexical BM25 index, and the SQLite manifest."""
