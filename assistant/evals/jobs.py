"""One evaluation run in a background thread, with progress (for the staff tab of the web app).

Usage::

    job = EvalJob(index, Path("evals/gold/dev.yaml"), Path("evals/reports/20260101-120000-hybrid"), lock=lock)
    job.start()
    job.state()   # {"running": True, "done": 12, "total": 79, "error": None, "summary": "", "out_dir": "…"}
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from assistant.evals.gate import find_previous, fr, gate, load_report, same_set


class EvalJob:
    """Runs ``run_eval`` + ``write_report`` once, in a daemon thread; ``state()`` is thread-safe."""

    def __init__(self, index: Any, set_path: Path, out_dir: Path, reports_dir: Path = Path("evals/reports"),
                 baseline: Path = Path("evals/baseline/report.json"), config: str = "hybrid",
                 lock: threading.Lock | None = None, log: Any = None) -> None:
        self.index, self.set_path, self.out_dir = index, set_path, out_dir
        self.log = log  # assistant.store.feedback.EvalJobLog: the state every replica sees
        self.reports_dir, self.baseline, self.config, self.lock = reports_dir, baseline, config, lock
        self._state: dict[str, Any] = {"running": False, "done": 0, "total": 0, "error": None, "summary": "",
                                       "out_dir": str(out_dir), "set": str(set_path)}
        self._mutex = threading.Lock()
        self._thread: threading.Thread | None = None

    def _update(self, **values: Any) -> None:
        with self._mutex:
            self._state.update(values)
            state = dict(self._state)
        if self.log is not None:
            try:
                self.log.record(self.out_dir.name, str(self.set_path), str(self.out_dir), state)
            except Exception:  # noqa: BLE001, S110 - the run goes on; the record catches up at the next update
                pass

    def state(self) -> dict[str, Any]:
        with self._mutex:
            return dict(self._state)

    def start(self) -> None:
        self._update(running=True)
        self._thread = threading.Thread(target=self._run, daemon=True, name="eval-job")
        self._thread.start()

    def _run(self) -> None:
        from assistant.evals.goldsets import load_set
        from assistant.evals.report import write_report
        from assistant.evals.runner import run_eval

        try:
            entries = load_set(self.set_path)
            self._update(total=len(entries))
            report = run_eval(entries, self.index, config=self.config, set_path=self.set_path, progress=False,
                              on_progress=lambda i, n: self._update(done=i, total=n), lock=self.lock)
            baseline = load_report(self.baseline) if self.baseline.is_file() else None
            write_report(report, self.out_dir, previous=find_previous(self.reports_dir, report, self.out_dir),
                         baseline=baseline)
            o = report["overall"]
            summary = (f"hit@3 {fr(o['hit@3'] or 0)} · faits dans la réponse {fr(o['answer_coverage'] or 0)} · rappel refus "
                       f"{fr(o['refusal_recall'])} · faux refus {fr(o['false_refusals'])}")
            if baseline is not None and same_set(report, baseline):
                problems = gate(report, baseline)
                summary += " · porte : " + ("réussie" if not problems else "ÉCHEC (" + " ; ".join(problems) + ")")
            self._update(summary=summary)
        except Exception as exc:  # noqa: BLE001 - shown to staff in French
            self._update(error=f"L'évaluation a échoué : {exc}")
        finally:
            self._update(running=False)
