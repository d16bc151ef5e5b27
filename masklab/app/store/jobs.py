"""Background jobs in the database: create, list, claim (exactly one worker), progress and
heartbeat, cancel, finish; the items of image jobs.

A job is claimed by a conditional update — ``queued``, or ``running`` with a heartbeat older
than ``stale`` seconds (its worker died) — so among app processes sharing one database each job
runs in one worker at a time, and a job whose process was killed is taken up again where its
committed progress stopped."""

from __future__ import annotations

import datetime as _dt

from sqlalchemy import and_, delete, func, insert, or_, select, update

from masklab.app import db
from masklab.app.store.base import NotFound
from masklab.errors import InputError

MAX_ERRORS = 200  # one-line errors kept on a job (the count goes on)


class JobStopped(Exception):
    """The job was cancelled, or another worker has it now: stop working on it."""


class JobsMixin:
    @staticmethod
    def _job(j: db.Job) -> dict:
        now = db._now()
        rate = eta = None
        started = _aware(j.started_at)
        if started is not None and j.state == "running":
            spent = (now - started).total_seconds()
            if spent > 0 and j.done > j.done_at_start:
                rate = (j.done - j.done_at_start) / spent
                if j.total:
                    eta = max(0.0, (j.total - j.done) / rate)
        return {"id": j.id, "project_id": j.project_id, "kind": j.kind, "params": j.params,
                "state": j.state, "done": j.done, "total": j.total,
                "failed": j.failed_items, "errors": j.errors or [], "message": j.message,
                "result": j.result or {}, "cancel": bool(j.cancel), "runs": j.runs,
                "created_by": j.created_by, "rate": None if rate is None else round(rate, 2),
                "eta_s": None if eta is None else round(eta, 1),
                "created_at": _iso(j.created_at), "started_at": _iso(j.started_at),
                "finished_at": _iso(j.finished_at)}

    def create_job(self, project_id: int, kind: str, params: dict | None = None, *,
                   user: str = "local", image_ids=None) -> dict:
        """A queued job; ``image_ids``: its items, in order (image jobs)."""
        if kind not in db.JOB_KINDS:
            raise InputError(f"job kind must be one of {', '.join(db.JOB_KINDS)}")
        with self.transaction() as s:
            self._get(s, db.Project, project_id)
            j = db.Job(project_id=project_id, kind=kind, params=dict(params or {}),
                       state="queued", done=0, failed_items=0, errors=[], message="",
                       result={}, cancel=False, created_by=user, runs=0, done_at_start=0)
            s.add(j)
            s.flush()
            if image_ids is not None:
                ids = [int(i) for i in image_ids]
                for k in range(0, len(ids), 5000):
                    s.execute(insert(db.JobItem), [
                        {"job_id": j.id, "seq": k + n, "image_id": i, "state": "pending"}
                        for n, i in enumerate(ids[k:k + 5000])])
                j.total = len(ids)
            return self._job(j)

    def job(self, job_id: int) -> dict:
        with self.Session() as s:
            return self._job(self._get(s, db.Job, job_id))

    def jobs(self, project_id: int | None = None, *, limit: int = 50) -> list[dict]:
        with self.Session() as s:
            q = select(db.Job).order_by(db.Job.id.desc()).limit(max(1, min(int(limit), 500)))
            if project_id is not None:
                q = q.where(db.Job.project_id == project_id)
            return [self._job(j) for j in s.scalars(q)]

    def cancel_job(self, job_id: int) -> dict:
        """Ask the job to stop (a queued one stops at once; a running one after its current
        item); what it has done stays."""
        with self.transaction() as s:
            j = self._get(s, db.Job, job_id)
            if j.state == "queued":
                j.state, j.finished_at, j.message = "cancelled", db._now(), "cancelled"
            elif j.state == "running":
                j.cancel = True
            return self._job(j)

    def claim_job(self, worker: str, stale: float = 30.0, kinds=None) -> int | None:
        """The id of the oldest job this worker now holds (``None``: nothing to do)."""
        old = db._now() - _dt.timedelta(seconds=stale)
        claimable = or_(db.Job.state == "queued",
                        and_(db.Job.state == "running", db.Job.heartbeat < old))
        for _ in range(5):  # another worker may take the same candidate first
            with self.Session() as s:
                q = select(db.Job.id).where(claimable).order_by(db.Job.id).limit(1)
                if kinds is not None:
                    q = q.where(db.Job.kind.in_(list(kinds)))
                jid = s.scalar(q)
            if jid is None:
                return None
            with self.transaction() as s:
                got = s.execute(update(db.Job).where(db.Job.id == jid, claimable).values(
                    state="running", worker=worker, heartbeat=db._now(),
                    started_at=db._now(), runs=db.Job.runs + 1,
                    done_at_start=db.Job.done)).rowcount
            if got == 1:
                return jid
        return None

    def requeue_jobs(self, host: str) -> int:
        """Jobs left ``running`` by a process of this host that is no longer alive become
        ``queued`` (at start-up: resumed at once, not after the heartbeat goes stale)."""
        with self.Session() as s:
            rows = s.execute(select(db.Job.id, db.Job.worker).where(
                db.Job.state == "running", db.Job.worker.startswith(f"{host}:"))).all()
        dead = [jid for jid, worker in rows if not _alive(worker)]
        if not dead:
            return 0
        with self.transaction() as s:
            return s.execute(update(db.Job).where(db.Job.id.in_(dead),
                                                  db.Job.state == "running")
                             .values(state="queued")).rowcount

    def _held(self, s, job_id: int, worker: str) -> db.Job:
        j = s.get(db.Job, job_id)
        if j is None or j.state != "running" or j.worker != worker:
            raise JobStopped(f"job {job_id} is no longer held by {worker}")
        if j.cancel:
            raise JobStopped(f"job {job_id} was cancelled")
        return j

    def job_progress(self, job_id: int, worker: str, *, done: int | None = None,
                     add: int = 0, total: int | None = None, errors=(),
                     message: str | None = None, s=None) -> None:
        """Record progress (and the heartbeat); raises ``JobStopped`` when the job was
        cancelled or is no longer this worker's. ``s``: an open transaction to do it in (the
        work's own, so that results and progress commit together)."""
        if s is None:
            with self.transaction() as s2:
                return self.job_progress(job_id, worker, done=done, add=add, total=total,
                                         errors=errors, message=message, s=s2)
        j = self._held(s, job_id, worker)
        if done is not None:
            j.done = int(done)
        j.done += int(add)
        if total is not None:
            j.total = int(total)
        errors = list(errors)
        if errors:
            j.failed_items += len(errors)
            kept = list(j.errors or [])
            j.errors = kept + [str(e).splitlines()[0][:500] for e in errors][
                :max(0, MAX_ERRORS - len(kept))]
        if message is not None:
            j.message = message
        j.heartbeat = db._now()
        return None

    def heartbeat(self, job_id: int, worker: str) -> bool:
        """Keep the claim alive; False when the job is cancelled or not ours any more."""
        with self.transaction() as s:
            got = s.execute(update(db.Job).where(
                db.Job.id == job_id, db.Job.worker == worker, db.Job.state == "running")
                .values(heartbeat=db._now())).rowcount
            cancel = s.scalar(select(db.Job.cancel).where(db.Job.id == job_id))
        return got == 1 and not cancel

    def finish_job(self, job_id: int, worker: str, state: str, *, result: dict | None = None,
                   message: str = "") -> dict | None:
        with self.transaction() as s:
            j = s.get(db.Job, job_id)
            if j is None or j.worker != worker or j.state != "running":
                return None
            j.state, j.finished_at = state, db._now()
            j.message = message
            if result is not None:
                j.result = result
            if state == "done" and j.total is None:
                j.total = j.done
            return self._job(j)

    def pending_items(self, job_id: int, limit: int = 64) -> list[tuple[int, int]]:
        """The next ``(seq, image_id)`` items still to do, in order."""
        with self.Session() as s:
            return [tuple(r) for r in s.execute(
                select(db.JobItem.seq, db.JobItem.image_id).where(
                    db.JobItem.job_id == job_id, db.JobItem.state == "pending")
                .order_by(db.JobItem.seq).limit(limit))]

    def job_image_ids(self, job_id: int) -> list[int]:
        """Every item's image id, in order (whatever its state)."""
        with self.Session() as s:
            return list(s.scalars(select(db.JobItem.image_id).where(
                db.JobItem.job_id == job_id).order_by(db.JobItem.seq)))

    @staticmethod
    def finish_item(s, job_id: int, seq: int, state: str = "done") -> bool:
        """Mark an item done (or failed) in transaction ``s``; False if it was not pending
        (then its results must not be written: another run did it)."""
        return s.execute(update(db.JobItem).where(
            db.JobItem.job_id == job_id, db.JobItem.seq == seq,
            db.JobItem.state == "pending").values(state=state)).rowcount == 1

    def item_counts(self, job_id: int) -> dict:
        with self.Session() as s:
            return dict(s.execute(select(db.JobItem.state, func.count()).where(
                db.JobItem.job_id == job_id).group_by(db.JobItem.state)).all())

    def delete_job(self, job_id: int) -> None:
        with self.transaction() as s:
            j = s.get(db.Job, job_id)
            if j is None:
                raise NotFound(f"job {job_id} does not exist")
            if j.state in ("queued", "running"):
                raise InputError(f"job {job_id} is {j.state}: cancel it first")
            s.execute(delete(db.JobItem).where(db.JobItem.job_id == job_id))
            s.delete(j)


def _alive(worker: str | None) -> bool:
    """Is the process of worker id ``host:pid:tag`` (on this host) running?"""
    import os

    try:
        pid = int(str(worker).split(":")[1])
    except (IndexError, ValueError):
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _aware(t: _dt.datetime | None) -> _dt.datetime | None:
    """SQLite gives datetimes back without their zone (they were stored in UTC)."""
    if t is None:
        return None
    return t if t.tzinfo is not None else t.replace(tzinfo=_dt.timezone.utc)


def _iso(t: _dt.datetime | None) -> str | None:
    t = _aware(t)
    return None if t is None else t.isoformat(timespec="seconds")
