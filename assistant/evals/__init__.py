"""Evaluations that staff can run: a gold set goes through the same ``answer()`` as the app.

- ``assistant.evals.goldsets``: read a question set (YAML, JSON Lines or CSV);
- ``assistant.evals.metrics``: pure functions (hit@k, MRR, key facts, citation precision, refusals…);
- ``assistant.evals.runner``: run a set for one configuration (bm25, dense, hybrid, llm) -> report dict;
- ``assistant.evals.gate``: compare two reports, the regression gate against the baseline;
- ``assistant.evals.report``: report.json + a self-contained report.html (inline CSS and SVG);
- ``assistant.evals.jobs``: a run in a background thread with progress (staff tab).

Usage::

    .venv/bin/assistant eval --set evals/gold/test.yaml          # report + gate vs evals/baseline/
    .venv/bin/assistant eval --compare evals/reports/A evals/reports/B
    .venv/bin/assistant eval --configs bm25,dense,hybrid --readme  # README table, regenerated
"""
