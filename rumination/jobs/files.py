"""Read a batch jobs file (YAML list or JSONL) into validated jobs.

Every error names the line (and in YAML the job number) and the field, in one line.
A job's `name` is a file name inside the output folder, never a path.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

from rumination.errors import UsageError
from rumination.jobs.records import load_records
from rumination.models import ReportFormat

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
# room in a 255-byte file name for the extension and write_atomic's temporary name around it
MAX_NAME_BYTES = 200
# the batch's own files in the output folder (summary.json, batch-state.json): a report of
# that name would be overwritten by them
RESERVED_NAMES = ("summary", "batch-state")


def _name_problem(name: str) -> str | None:
    """Why `name` cannot be a file name inside the output folder, or None when it can."""
    if not name.strip():
        return "is empty"
    if name in (".", ".."):
        return "is '.' or '..'"
    if "/" in name or "\\" in name:
        return "contains a path separator (/ or \\)"
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "contains a control character"
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    if name.lower() in RESERVED_NAMES:
        return "is the name of the batch's own summary or state file"
    return None


def check_output_name(name: str) -> str:
    """`name` itself; a validation error when it would not name a file inside the output
    folder (a path, `..`, a control character), so no report is written elsewhere."""
    problem = _name_problem(name)
    if problem is not None:
        shown = repr(name if len(name) <= 120 else name[:120] + "…")
        raise PydanticCustomError("output_name", "{name} is not a plain file name: it {problem}",
                                  {"name": shown, "problem": problem})
    return name


OutputName = Annotated[str, AfterValidator(check_output_name)]


class Job(BaseModel):
    """One question and the settings it overrides for itself."""

    model_config = {"extra": "forbid"}

    question: str = Field(min_length=1)
    name: OutputName | None = Field(None, description="output file name without extension")
    llm_url: str | None = None
    model: str | None = None
    backend: str | None = None
    corpus: str | None = None
    mode: str | None = None
    format: ReportFormat | None = None
    max_turns: int | None = Field(None, gt=0)

    def key(self) -> str:
        """Stable identity across re-runs of the same jobs file."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:10]
        return self.name or f"{_SAFE_NAME.sub('-', self.question.lower())[:40].strip('-')}-{digest}"

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude={"question", "name"}, exclude_none=True)


def load_jobs(path: Path) -> list[Job]:
    jobs = load_records(path, Job, noun="job", needs="at least `question`")
    keys = [job.key() for job in jobs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise UsageError(f"{path}: two jobs share the output name {duplicates[0]!r}")
    return jobs
