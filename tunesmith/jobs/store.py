"""The job store: uploaded-file and fine-tuning-job records on SQLAlchemy (SQLite by default, PostgreSQL to share).

Only records live here. Training state lives in each job's run directory, which the API reads.
Several workers may poll one store: a job is claimed with a compare-and-set on its `attempts` counter (and,
on PostgreSQL, `SELECT … FOR UPDATE SKIP LOCKED`), so two workers never take the same job. A claimed job's
worker writes a heartbeat; a job whose heartbeat went stale (its worker was killed) is claimed again and
resumes from its last checkpoint.
"""

from __future__ import annotations

import secrets
import string
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import JSON, Boolean, Float, Integer, String, Text, create_engine, event, or_, and_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

TERMINAL = ("succeeded", "failed", "cancelled")
_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A random id (`file-…`, `ftjob-…`): never derived from user input, never guessable."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def now() -> int:
    return int(time.time())


class Base(DeclarativeBase):
    pass


class FileRecord(Base):
    __tablename__ = "files"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)  # stable list order
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    filename: Mapped[str] = mapped_column(String(512))  # as uploaded; shown, never used as a path
    purpose: Mapped[str] = mapped_column(String(32))
    bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))  # uploaded | processed | error
    status_details: Mapped[str | None] = mapped_column(Text, nullable=True)
    report: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # ValidationReport.to_dict()


class JobRecord(Base):
    __tablename__ = "jobs"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    model: Mapped[str] = mapped_column(String(256))
    training_file: Mapped[str] = mapped_column(String(64))
    validation_file: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hyperparameters: Mapped[dict] = mapped_column(JSON)  # as requested: "auto" or numbers
    suffix: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seed: Mapped[int] = mapped_column(Integer)
    job_metadata: Mapped[dict | None] = mapped_column("metadata", JSON, nullable=True)
    status: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[int] = mapped_column(Integer)
    finished_at: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(512), nullable=True, index=True)
    model_deleted: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    result_files: Mapped[list] = mapped_column(JSON, default=list)
    trained_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    control: Mapped[str | None] = mapped_column(String(16), nullable=True)  # "cancel" | "pause", for the worker
    worker_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    heartbeat_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # times claimed; the compare-and-set version


class EventRecord(Base):
    """Job lifecycle events (created, validated, claimed, finished); training events are in the run dir."""

    __tablename__ = "job_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    job_id: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(8))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    type: Mapped[str] = mapped_column(String(16))
    # Where the event sorts against the run directory's training events within the same second:
    # 0 before training, 2 after it (training events are 1).
    phase: Mapped[int] = mapped_column(Integer, default=0)


def default_db_url(data_dir: Path) -> str:
    return f"sqlite:///{Path(data_dir) / 'tunesmith.db'}"


def _engine_for(url: str) -> Engine:
    if url.startswith("postgresql://"):  # psycopg 3 is the driver we ship, not psycopg2
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(conn: Any, _record: Any) -> None:
        # WAL lets the API read while a worker writes; busy_timeout waits for a lock instead of failing.
        cur = conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    return engine


class JobStore:
    """Records of files, jobs and job events. Thread-safe: every method opens its own session."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = _engine_for(url)
        self.is_postgres = self.engine.dialect.name == "postgresql"
        Base.metadata.create_all(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as s, s.begin():
            yield s

    def close(self) -> None:
        self.engine.dispose()

    # --- files -----------------------------------------------------------------------------------------------

    def add_file(self, record: FileRecord) -> FileRecord:
        with self.session() as s:
            s.add(record)
        return record

    def get_file(self, file_id: str) -> FileRecord | None:
        with self.session() as s:
            return s.scalars(select(FileRecord).where(FileRecord.id == file_id)).first()

    def list_files(self, *, purpose: str | None = None, after: str | None = None, limit: int = 10_000,
                   ascending: bool = False) -> tuple[list[FileRecord], bool]:
        with self.session() as s:
            q = select(FileRecord)
            if purpose:
                q = q.where(FileRecord.purpose == purpose)
            return _page(s, q, FileRecord, after, limit, ascending)

    def delete_file(self, file_id: str) -> bool:
        with self.session() as s:
            record = s.scalars(select(FileRecord).where(FileRecord.id == file_id)).first()
            if record is None:
                return False
            s.delete(record)
            return True

    # --- jobs ------------------------------------------------------------------------------------------------

    def add_job(self, record: JobRecord) -> JobRecord:
        with self.session() as s:
            s.add(record)
        return record

    def get_job(self, job_id: str) -> JobRecord | None:
        with self.session() as s:
            return s.scalars(select(JobRecord).where(JobRecord.id == job_id)).first()

    def find_job_by_model(self, fine_tuned_model: str) -> JobRecord | None:
        with self.session() as s:
            return s.scalars(select(JobRecord).where(JobRecord.fine_tuned_model == fine_tuned_model)).first()

    def list_jobs(self, *, after: str | None = None, limit: int = 20, status: tuple[str, ...] | None = None,
                  metadata: dict[str, str] | None = None) -> tuple[list[JobRecord], bool]:
        with self.session() as s:
            q = select(JobRecord)
            if status:
                q = q.where(JobRecord.status.in_(status))
            if not metadata:
                return _page(s, q, JobRecord, after, limit, ascending=False)
            # metadata filters are rare and small: filter in Python so SQLite and PostgreSQL JSON agree.
            jobs, _ = _page(s, q, JobRecord, after, 1_000_000, ascending=False)
            jobs = [j for j in jobs if all((j.job_metadata or {}).get(k) == v for k, v in metadata.items())]
            return jobs[:limit], len(jobs) > limit

    def update_job(self, job_id: str, *, expect_status: tuple[str, ...] | None = None,
                   expect_worker: str | None = None, **values: Any) -> bool:
        """Set fields if the job is still in one of `expect_status` (and held by `expect_worker`); True if set."""
        with self.session() as s:
            q = update(JobRecord).where(JobRecord.id == job_id)
            if expect_status is not None:
                q = q.where(JobRecord.status.in_(expect_status))
            if expect_worker is not None:
                q = q.where(JobRecord.worker_id == expect_worker)
            return s.execute(q.values(**values)).rowcount == 1

    def claim_job(self, worker_id: str, *, stale_after: float) -> JobRecord | None:
        """Take the oldest queued job, or a running one whose worker stopped beating; None if there is none."""
        t = time.time()
        # A running job is claimable when its heartbeat is stale, or when it carries this worker's own id: a
        # worker runs one job at a time, so such a job is left over from before this worker restarted.
        claimable = or_(
            JobRecord.status == "queued",
            and_(JobRecord.status == "running", or_(JobRecord.heartbeat_at.is_(None),
                                                    JobRecord.heartbeat_at < t - stale_after,
                                                    JobRecord.worker_id == worker_id)),
        )
        try:
            with self.session() as s:
                q = select(JobRecord).where(claimable).order_by(JobRecord.seq).limit(1)
                if self.is_postgres:
                    q = q.with_for_update(skip_locked=True)
                job = s.scalars(q).first()
                if job is None:
                    return None
                resumed = job.status == "running"
                # Compare-and-set on `attempts`: SQLite has no row locks, so a second worker that read the same
                # row finds it changed and gets rowcount 0.
                taken = s.execute(
                    update(JobRecord)
                    .where(JobRecord.id == job.id, JobRecord.attempts == job.attempts)
                    .values(status="running", worker_id=worker_id, heartbeat_at=t, attempts=job.attempts + 1)
                ).rowcount
                if taken != 1:
                    return None
        except OperationalError:  # SQLite busy: another worker is claiming; try again on the next poll
            return None
        job = self.get_job(job.id)
        self.add_event(job.id, f"Job claimed by worker {worker_id}" + (" after its previous worker stopped" if resumed else ""),
                       data={"worker_id": worker_id, "attempt": job.attempts})
        return job

    def heartbeat(self, job_id: str, worker_id: str) -> bool:
        """Refresh the claim; False when the job is no longer this worker's (taken over, or finished elsewhere)."""
        return self.update_job(job_id, expect_status=("running",), expect_worker=worker_id, heartbeat_at=time.time())

    # --- events ----------------------------------------------------------------------------------------------

    def add_event(self, job_id: str, message: str, *, level: str = "info", data: dict | None = None,
                  type: str = "message", phase: int = 0) -> EventRecord:
        record = EventRecord(id=new_id("ftevent-"), job_id=job_id, created_at=now(), level=level,
                             message=message, data=data, type=type, phase=phase)
        with self.session() as s:
            s.add(record)
        return record

    def list_events(self, job_id: str) -> list[EventRecord]:
        """Oldest first."""
        with self.session() as s:
            return list(s.scalars(select(EventRecord).where(EventRecord.job_id == job_id).order_by(EventRecord.seq)))


def _page(s: Session, q: Any, table: Any, after: str | None, limit: int,
          ascending: bool) -> tuple[list[Any], bool]:
    """One cursor page ordered by insertion: the rows after the row whose id is `after`, and whether more follow."""
    if after:
        after_seq = s.scalars(select(table.seq).where(table.id == after)).first()
        if after_seq is not None:
            q = q.where(table.seq > after_seq if ascending else table.seq < after_seq)
    q = q.order_by(table.seq.asc() if ascending else table.seq.desc()).limit(limit + 1)
    rows = list(s.scalars(q))
    return rows[:limit], len(rows) > limit
