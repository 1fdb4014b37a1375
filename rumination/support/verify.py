"""`rumination verify`: re-check the citations of a finished report with a judge.

The report comes from a JSON file (as `--format json` writes it) or from the run store by
run id; the evidence, the source text the model was shown, always comes from the run store.
Statements dropped by an earlier check stay recorded as dropped; everything else is judged
afresh.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from rumination.errors import UsageError
from rumination.models import Report
from rumination.settings import Settings
from rumination.store.run_store import FINISHED, RunStore
from rumination.support.evidence import evidence_by_source
from rumination.support.judges import verified


def load_report(target: str, store: RunStore) -> Report:
    """The report in the JSON file `target`, else the stored report of run `target`."""
    path = Path(target)
    if path.is_file():
        try:
            return Report.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise UsageError(f"{target} is not a rumination JSON report ({first})") from None
    if path.suffix.lower() == ".json":
        raise UsageError(f"report file not found: {target}")
    report = store.report(store.get_run(target).run_id)
    if report is None:
        raise UsageError(f"run {target} has no report yet (finish it with `runs resume`)")
    return report


def stored_evidence(run_id: str, store: RunStore) -> dict[int, str]:
    """What the run showed the model for each source, from its stored observations."""
    try:
        store.get_run(run_id)
    except UsageError:
        raise UsageError(
            f"run {run_id} is not in the run store {store.where}: the source text it was shown "
            "is needed (set run_store to the store the run was recorded in)"
        ) from None
    return evidence_by_source(t.observation for t in store.turns(run_id) if t.observation)


async def verify_report(report: Report, store: RunStore, settings: Settings) -> Report:
    """`report` re-checked by the judge `settings` names; stored again if it is a finished
    run's report."""
    evidence = stored_evidence(report.run_id, store)
    dropped = [s for s in report.statements if s.action == "dropped"]
    fresh = await verified(report.model_copy(update={"statements": []}), evidence, settings,
                           strict=True)  # a judge that fails fails the run: nothing is rewritten
    checked = fresh.model_copy(update={"statements": [*dropped, *fresh.statements]})
    if store.get_run(report.run_id).status == FINISHED:
        store.set_status(report.run_id, FINISHED, checked)
    return checked
