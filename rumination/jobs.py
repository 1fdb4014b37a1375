"""Read a batch jobs file (YAML list or JSONL) into validated jobs.

Every error names the line (JSONL) or job number (YAML) and the field, in one line.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from .errors import UsageError
from .records import load_records

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Job(BaseModel):
    """One question and the settings it overrides for itself."""

    model_config = {"extra": "forbid"}

    question: str = Field(min_length=1)
    name: str | None = Field(None, description="output file name without extension")
    llm_url: str | None = None
    model: str | None = None
    backend: str | None = None
    corpus: str | None = None
    mode: str | None = None
    format: str | None = Field(None, pattern="^(md|json|html)$")
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
