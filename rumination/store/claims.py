"""Which batch driver runs which job: claims with leases in the run store.

Every driver of a batch (the same output folder) registers the jobs, then takes them one at a
time with `claim_next`: SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL, a BEGIN IMMEDIATE
transaction on SQLite, so two drivers never take the same job. A claim is a lease: the
driver renews its leases while it works (`renew`); a job whose driver stopped renewing (the
machine died) is claimable again once its lease has expired, and is resumed from its run's
last committed turn. Times are the database's clock, so machines need not agree on theirs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rumination.store.run_store import RunStore

PENDING, RUNNING, FINISHED, FAILED = "pending", "running", "finished", "failed"


@dataclass(frozen=True)
class Claim:
    job: str
    run_id: str | None  # set when an earlier attempt started a run: resume it
    attempts: int


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class JobClaims:
    def __init__(self, store: RunStore, batch: str, owner: str, jobs: list[str] | None = None
                 ) -> None:  # fmt: skip
        """`jobs`: the jobs file's keys, in order (a batch's folder may hold older ones)."""
        self.db = store.db
        self.batch = batch
        self.owner = owner
        self.jobs = jobs or []
        self._mine = f"batch = ? AND job IN ({', '.join('?' * len(self.jobs))})"

    def register(self, finished: set[str], known_runs: dict[str, str]) -> None:
        """Add the jobs not yet known. `finished`: the jobs whose report exists; a job that
        failed, or finished but lost its report, is pending again (its run, if finished,
        gives its report back without the model). `known_runs`: run ids an older
        batch-state.json recorded, resumed rather than started again."""
        now = _now()
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO job_claims (batch, job, position, status, run_id, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (batch, job) DO NOTHING",
                [(self.batch, job, i, FINISHED if job in finished else PENDING,
                  known_runs.get(job), now) for i, job in enumerate(self.jobs)],
            )  # fmt: skip
            rows = tx.execute(f"SELECT job, status FROM job_claims WHERE {self._mine}",
                              (self.batch, *self.jobs))  # fmt: skip
            again = [job for job, status in rows if status == FAILED
                     or (status == FINISHED and job not in finished)]  # fmt: skip
            tx.executemany(
                "UPDATE job_claims SET status = ?, owner = NULL, lease_until = NULL,"
                " updated_at = ? WHERE batch = ? AND job = ?",
                [(PENDING, now, self.batch, job) for job in again],
            )

    def claim_next(self, lease_s: float) -> Claim | None:
        """Take the first pending job, or one whose lease has expired; None if there is none."""
        now = self.db.now_epoch
        with self.db.transaction() as tx:
            rows = tx.execute(
                f"SELECT job, run_id, attempts FROM job_claims WHERE {self._mine} AND"
                f" (status = ? OR (status = ? AND lease_until < {now}))"
                f" ORDER BY position LIMIT 1{self.db.skip_locked}",
                (self.batch, *self.jobs, PENDING, RUNNING),
            )
            if not rows:
                return None
            job, run_id, attempts = rows[0]
            tx.execute(
                f"UPDATE job_claims SET status = ?, owner = ?, lease_until = {now} + ?,"
                " attempts = attempts + 1, updated_at = ? WHERE batch = ? AND job = ?",
                (RUNNING, self.owner, lease_s, _now(), self.batch, job),
            )
        return Claim(job=job, run_id=run_id, attempts=attempts + 1)

    def renew(self, lease_s: float) -> set[str]:
        """Extend every lease this driver holds; the jobs it still holds."""
        now = self.db.now_epoch
        with self.db.transaction() as tx:
            tx.execute(
                f"UPDATE job_claims SET lease_until = {now} + ? WHERE batch = ? AND owner = ?"
                " AND status = ?", (lease_s, self.batch, self.owner, RUNNING),
            )  # fmt: skip
            rows = tx.execute(
                "SELECT job FROM job_claims WHERE batch = ? AND owner = ? AND status = ?",
                (self.batch, self.owner, RUNNING),
            )
        return {row[0] for row in rows}

    def release(self) -> None:
        """Give back every job this driver holds (it is stopping): pending again at once."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE job_claims SET status = ?, owner = NULL, lease_until = NULL"
                " WHERE batch = ? AND owner = ? AND status = ?",
                (PENDING, self.batch, self.owner, RUNNING),
            )

    def set_run(self, job: str, run_id: str) -> None:
        """Record the run a job started, so that whoever takes it over resumes it."""
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE job_claims SET run_id = ?, updated_at = ? WHERE batch = ? AND job = ?",
                (run_id, _now(), self.batch, job),
            )

    def run_id(self, job: str) -> str | None:
        rows = self.db.query(
            "SELECT run_id FROM job_claims WHERE batch = ? AND job = ?", (self.batch, job)
        )
        return rows[0][0] if rows else None

    def finish(self, job: str, status: str, result: dict[str, Any]) -> bool:
        """Record a job's outcome; False if this driver had lost the job meanwhile."""
        with self.db.transaction() as tx:
            held = tx.execute(
                "SELECT owner FROM job_claims WHERE batch = ? AND job = ?", (self.batch, job)
            )
            if not held or held[0][0] != self.owner:
                return False
            tx.execute(
                "UPDATE job_claims SET status = ?, run_id = coalesce(?, run_id),"
                " result_json = ?, lease_until = NULL, updated_at = ? WHERE batch = ? AND job = ?",
                (status, result.get("run_id"), json.dumps(result), _now(), self.batch, job),
            )
        return True

    def counts(self) -> dict[str, int]:
        rows = self.db.query(
            f"SELECT status, count(*) FROM job_claims WHERE {self._mine} GROUP BY status",
            (self.batch, *self.jobs),
        )
        return {status: int(n) for status, n in rows}

    def results(self) -> dict[str, tuple[str, str | None, dict[str, Any] | None]]:
        """Each job's status, run id and recorded result."""
        rows = self.db.query(
            f"SELECT job, status, run_id, result_json FROM job_claims WHERE {self._mine}",
            (self.batch, *self.jobs),
        )
        return {job: (status, run_id, json.loads(result) if result else None)
                for job, status, run_id, result in rows}  # fmt: skip
