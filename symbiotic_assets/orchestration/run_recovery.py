"""Crash recovery for Dagster runs: a killed run never blocks the next one.

Why this exists: every step that writes the warehouse claims a slot of the Dagster pool
``duckdb_warehouse`` (limit 1, DuckDB allows one writer). Dagster records the claim in its
instance (``concurrency_slots`` and ``pending_steps``) and releases it when the step ends
in that process. A process killed with SIGKILL (the OOM killer, a closed laptop, a CI
timeout) never gets there: its run stays STARTED in the UI and its slot stays assigned, so
every later run waits for that slot forever.

What this module does:

- :func:`recover_dead_runs` finds runs in STARTING/STARTED/CANCELING whose process is gone,
  marks them failed (a real run-failure event: the UI shows FAILURE) and frees their
  slots; slots still held by finished runs are freed too. It runs before ``symbiotic run``
  starts its jobs and in :data:`dead_run_recovery_sensor` for runs the daemon launches.
- A run's process is the one that logged its RUN_START event (``symbiotic run`` itself for
  in-process runs; the run worker for runs the daemon launches), with the event's time.
  A live process with that pid counts only if it already existed then (a pid reused by a
  later process does not keep a dead run alive). Runs tagged with :func:`process_tags`
  also name their host; runs of another host are never judged from here. A run whose
  worker died while one of its step processes (multiprocess executor) still runs is alive
  until that process ends.
- Children a killed ``symbiotic run`` left running (dbt keeps building, and locking, the
  warehouse) are ended by the next recovery, from a :class:`ChildLedger` of pids and
  start times that the process keeps while it runs.
- :func:`guard_interrupts` makes SIGINT/SIGTERM stop ``symbiotic run`` within seconds,
  also while it waits for a slot: Dagster defers those signals until a step's code runs,
  which never happens while a step waits for its slot.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import psutil

if TYPE_CHECKING:
    from dagster._core.storage.dagster_run import DagsterRun

PID_TAG = "symbiotic/pid"
HOST_TAG = "symbiotic/host"
PROCESS_START_TAG = "symbiotic/process_start"
# create_time() is derived from boot time in whole seconds plus clock ticks: allow for it.
CLOCK_SLACK_SECONDS = 2.0
# After the first SIGINT/SIGTERM, Dagster gets this long to fail the current step its own
# way before the process records its runs as failed and exits anyway.
INTERRUPT_GRACE_SECONDS = 2.0
_UNFINISHED = [
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass(frozen=True)
class RunProcess:
    """The process that executes a run, as far as the instance knows it."""

    pid: int
    running_at: float  # a time (epoch seconds) at which that process was executing the run
    host: str | None = None  # None: not recorded; a local instance implies this host


@dataclass(frozen=True)
class RecoveredRun:
    run_id: str
    job_name: str
    partition: str | None
    status: str  # the status it was left in
    pid: int
    pools: tuple[str, ...]  # pools whose slots or queue places it held

    def label(self) -> str:
        part = f":{self.partition}" if self.partition else ""
        return f"{self.job_name}{part} {self.run_id[:8]} (pid {self.pid}, was {self.status})"


@dataclass
class RecoveryReport:
    recovered: list[RecoveredRun] = field(default_factory=list)
    # finished runs (any status but unfinished) that still held slots, now freed
    freed_finished: list[str] = field(default_factory=list)
    # unfinished runs whose process cannot be checked from here (another host)
    undecided: list[str] = field(default_factory=list)
    # "pid name" of child processes (dbt, git) that dead processes left running, now ended
    ended_processes: list[str] = field(default_factory=list)

    def summary(self) -> str | None:
        """One line naming what was recovered, or None when there was nothing to do."""
        if not self.recovered and not self.freed_finished and not self.ended_processes:
            return None
        parts = []
        if self.recovered:
            slots = sum(1 for r in self.recovered if r.pools)
            parts.append(
                f"marked {len(self.recovered)} run(s) of processes that are gone as failed "
                f"({', '.join(r.label() for r in self.recovered)}); "
                f"freed the concurrency slots of {slots}"
            )
        if self.freed_finished:
            ids = ", ".join(r[:8] for r in self.freed_finished)
            parts.append(f"freed slots still held by finished run(s) {ids}")
        if self.ended_processes:
            parts.append(
                "ended processes that killed runs left running: " + ", ".join(self.ended_processes)
            )
        return "Recovered: " + "; ".join(parts)


def process_start_time(pid: int | None = None) -> float:
    """Creation time (epoch seconds) of a process, this one by default."""
    return psutil.Process(pid if pid is not None else os.getpid()).create_time()


def process_tags() -> dict[str, str]:
    """Tags naming this process (pid, host, start time) for runs it executes.

    Not required (the RUN_START event names the pid), but tagged runs name their host too.
    """
    return {
        PID_TAG: str(os.getpid()),
        HOST_TAG: socket.gethostname(),
        PROCESS_START_TAG: f"{process_start_time():.3f}",
    }


def process_is_alive(pid: int, running_at: float) -> bool:
    """Whether process ``pid`` is alive and is the one that existed at ``running_at``.

    A zombie is dead (killed, not yet reaped by its parent). A process created after
    ``running_at`` got a recycled pid and says nothing about the run.
    """
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        created = proc.create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True  # someone else's process with that pid: cannot tell, so never touch it
    return created <= running_at + CLOCK_SLACK_SECONDS


def _local_storage(instance: dg.DagsterInstance) -> bool:
    """True when runs are stored in files of this machine (SQLite), so pids are ours."""
    from dagster._core.storage.runs.sqlite.sqlite_run_storage import SqliteRunStorage

    storage = getattr(instance, "run_storage", None)
    inner = getattr(storage, "_storage", None)  # LegacyRunStorage wraps the real one
    return isinstance(storage, SqliteRunStorage) or isinstance(
        getattr(inner, "run_storage", None), SqliteRunStorage
    )


def run_process(instance: dg.DagsterInstance, run: DagsterRun) -> RunProcess | None:
    """The process executing ``run``: from its tags, else from its RUN_START event."""
    tags = run.tags
    if PID_TAG in tags and PROCESS_START_TAG in tags:
        try:
            return RunProcess(
                pid=int(tags[PID_TAG]),
                running_at=float(tags[PROCESS_START_TAG]),
                host=tags.get(HOST_TAG),
            )
        except ValueError:
            pass  # malformed tags: fall back to what Dagster recorded
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_START, limit=1
    ).records
    if not records:
        return None
    entry = records[0].event_log_entry
    pid = entry.dagster_event.pid if entry.dagster_event is not None else None
    if pid is None:
        return None
    return RunProcess(pid=pid, running_at=entry.timestamp)


def _step_processes_alive(instance: dg.DagsterInstance, run: DagsterRun, run_pid: int) -> bool:
    """Whether a step process of ``run`` (the multiprocess executor's children) still runs.

    Killing a run worker can orphan a step process that keeps writing the warehouse; its
    run is not dead until that step process is gone too.
    """
    records = instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.STEP_START
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        pid = event.pid if event is not None else None
        if pid is not None and pid != run_pid and process_is_alive(pid, record.timestamp):
            return True
    return False


def _slot_holders(instance: dg.DagsterInstance) -> dict[str, set[str]]:
    """run id -> pools in which it holds a slot or a place in the queue."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return {}
    holders: dict[str, set[str]] = {}
    for key in storage.get_concurrency_keys():
        info = storage.get_concurrency_info(key)
        for slot in info.claimed_slots:
            holders.setdefault(slot.run_id, set()).add(key)
        for step in info.pending_steps:
            holders.setdefault(step.run_id, set()).add(key)
    return holders


def _fail_and_free(
    instance: dg.DagsterInstance, run: DagsterRun, pools: Iterable[str], message: str, pid: int
) -> RecoveredRun:
    if run.status == dg.DagsterRunStatus.CANCELING:
        instance.report_run_canceled(run, message=message)
    else:
        instance.report_run_failed(run, message=message)
    if instance.event_log_storage.supports_global_concurrency_limits:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    after = instance.get_run_by_id(run.run_id)
    return RecoveredRun(
        run_id=run.run_id,
        job_name=run.job_name,
        partition=run.tags.get("dagster/partition"),
        status=str(after.status.value if after else run.status.value),
        pid=pid,
        pools=tuple(sorted(pools)),
    )


def _recovery_lock(instance: dg.DagsterInstance):  # type: ignore[no-untyped-def]
    """One recoverer at a time per instance (the CLI and the sensor may both try)."""
    from filelock import FileLock

    root = getattr(instance, "root_directory", None)
    if not root:
        from contextlib import nullcontext

        return nullcontext()
    return FileLock(str(Path(root) / ".symbiotic-run-recovery.lock"), timeout=60)


def recover_dead_runs(instance: dg.DagsterInstance) -> RecoveryReport:
    """Mark unfinished runs whose process is gone as failed and free their concurrency slots.

    Never touches a run whose process is alive, or whose process cannot be checked from
    this machine. Idempotent: a recovered run is finished, so a second pass skips it.
    """
    report = RecoveryReport()
    this_host = socket.gethostname()
    local = _local_storage(instance)
    with _recovery_lock(instance):
        root = getattr(instance, "root_directory", None)
        if root:
            report.ended_processes = end_orphans(Path(root) / LEDGER_DIR)
        holders = _slot_holders(instance)
        records = instance.get_run_records(filters=dg.RunsFilter(statuses=_UNFINISHED))
        unfinished = {r.dagster_run.run_id for r in records}
        for record in records:
            run = record.dagster_run
            proc = run_process(instance, run)
            if proc is None:
                continue  # not started yet (STARTING): Dagster's run monitoring times it out
            if proc.host is not None and proc.host != this_host:
                report.undecided.append(run.run_id)
                continue
            if proc.host is None and not local:
                report.undecided.append(run.run_id)  # shared storage: the pid may be remote
                continue
            if process_is_alive(proc.pid, proc.running_at):
                continue
            if _step_processes_alive(instance, run, proc.pid):
                continue
            fresh = instance.get_run_by_id(run.run_id)
            if fresh is None or fresh.status not in _UNFINISHED:
                continue  # finished meanwhile
            message = (
                f"The process that ran this run (pid {proc.pid}) is gone (killed or crashed); "
                "marked as failed and its concurrency slots freed by Symbiotic's run recovery."
            )
            report.recovered.append(
                _fail_and_free(instance, fresh, holders.get(run.run_id, ()), message, proc.pid)
            )
        for run_id in sorted(set(holders) - unfinished):
            holder = instance.get_run_by_id(run_id)
            if holder is not None and holder.status in _UNFINISHED:
                continue  # started after we listed the unfinished runs
            if holder is not None and holder.status in (
                dg.DagsterRunStatus.QUEUED,
                dg.DagsterRunStatus.NOT_STARTED,
            ):
                continue
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            report.freed_finished.append(run_id)
    return report


# --- interrupts -------------------------------------------------------------------------


class _InterruptGuard:
    """Stops the process within seconds of SIGINT/SIGTERM, whatever Dagster is doing.

    ``signal.set_wakeup_fd`` writes the number of every signal that arrives to a pipe, no
    matter which Python handler is installed at that moment (Dagster swaps its own in
    during execution, and its handler only sets a flag that a step waiting for its
    concurrency slot never reads). A watcher thread reads the pipe; after a short grace
    (a second signal: at once) it records this process's unfinished runs as failed, frees
    their slots, ends its child processes (dbt, git) and exits with 128 + signal number.

    Every second the same thread writes this process's children to a ledger in the
    Dagster home, so that when this process is killed outright, the next recovery ends
    the children it left running (a dbt build still writing the warehouse).
    """

    def __init__(self, grace_seconds: float, ledger_dir: Path | None) -> None:
        self.grace_seconds = grace_seconds
        self.installed_at = time.time()
        self.ledger = ChildLedger(ledger_dir) if ledger_dir is not None else None
        self._read_fd, self._write_fd = os.pipe()
        self._stderr_fd = os.dup(2)
        os.set_blocking(self._write_fd, False)

    def install(self) -> None:
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        # Python handlers must exist for the wakeup fd to see the signal at all; outside a
        # Dagster run both raise KeyboardInterrupt, which ends the command normally.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        threading.Thread(target=self._watch, name="symbiotic-interrupts", daemon=True).start()

    def _watch(self) -> None:
        first: int | None = None
        deadline = float("inf")
        wanted = {int(signal.SIGINT), int(signal.SIGTERM)}
        while True:
            if first is None:
                timeout = LEDGER_INTERVAL_SECONDS
                if self.ledger is not None:
                    self.ledger.record()
            else:
                timeout = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([self._read_fd], [], [], timeout)
            if ready:
                received = [b for b in os.read(self._read_fd, 64) if b in wanted]
                if received:
                    if first is None:
                        first = received[0]
                        deadline = time.monotonic() + self.grace_seconds
                        if len(received) > 1:
                            deadline = time.monotonic()
                    else:
                        deadline = time.monotonic()  # second signal: stop now
            if first is not None and time.monotonic() >= deadline:
                self._stop(first)
                return

    def _own_unfinished_runs(self, instance: dg.DagsterInstance) -> list[DagsterRun]:
        records = instance.get_run_records(
            filters=dg.RunsFilter(
                statuses=[*_UNFINISHED, dg.DagsterRunStatus.NOT_STARTED],
                created_after=_utc(self.installed_at - 1.0),
            )
        )
        own = []
        for record in records:
            run = record.dagster_run
            first = instance.get_records_for_run(run.run_id, limit=1).records
            entry = first[0].event_log_entry if first else None
            proc = run_process(instance, run)
            pids = {proc.pid if proc else None}
            if entry is not None and entry.dagster_event is not None:
                pids.add(entry.dagster_event.pid)
            if os.getpid() in pids:
                own.append(run)
        return own

    def _stop(self, signum: int) -> None:
        name = signal.Signals(signum).name
        labels: list[str] = []
        run_ids: list[str] = []
        _end_children()
        if self.ledger is not None:
            self.ledger.remove()
        try:
            instance = dg.DagsterInstance.get()
            holders = _slot_holders(instance)
            for run in self._own_unfinished_runs(instance):
                message = f"Stopped by {name}: the symbiotic process (pid {os.getpid()}) exited."
                recovered = _fail_and_free(
                    instance, run, holders.get(run.run_id, ()), message, os.getpid()
                )
                labels.append(recovered.label())
                run_ids.append(run.run_id)
        except Exception as exc:  # exiting matters more than the bookkeeping
            labels.append(f"could not record the interrupted runs: {exc}")
        if run_ids:
            _free_once_gone(os.getpid(), run_ids)
        what = f"; marked failed: {', '.join(labels)}" if labels else ""
        try:
            # to the stderr we started with: Dagster points fds 1 and 2 at its compute
            # log files while a run executes, and a progress display may hold sys.stdout
            os.write(self._stderr_fd, f"\nInterrupted by {name}: stopping{what}\n".encode())
        finally:
            os._exit(128 + signum)


def _free_once_gone(pid: int, run_ids: list[str]) -> None:
    """Start a helper that frees the runs' slots once ``pid`` has exited.

    Freeing from inside the process is not enough: while a step waits for its slot,
    Dagster's main loop re-queues the step the moment its queue place disappears, and
    only the process's end stops that loop.
    """
    import subprocess

    subprocess.Popen(
        [sys.executable, "-m", __name__, "free-after-exit", str(pid), *run_ids],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # not ended by a Ctrl-C sent to the whole process group
    )


def free_after_exit(pid: int, run_ids: Iterable[str], timeout: float = 120.0) -> list[str]:
    """Wait for process ``pid`` to end, then free the slots its finished runs still hold."""
    with contextlib.suppress(psutil.NoSuchProcess):
        try:
            psutil.Process(pid).wait(timeout)
        except psutil.TimeoutExpired:
            return []
    freed = []
    with dg.DagsterInstance.get() as instance:
        for run_id in run_ids:
            run = instance.get_run_by_id(run_id)
            if run is None or run.status in _UNFINISHED:
                continue  # never touch a run that something is still executing
            instance.event_log_storage.free_concurrency_slots_for_run(run_id)
            freed.append(run_id)
    return freed


# --- children left behind ---------------------------------------------------------------

LEDGER_DIR = ".symbiotic-children"
LEDGER_INTERVAL_SECONDS = 1.0


class ChildLedger:
    """This process's child processes, kept in ``<dir>/<pid>.json`` while it runs.

    A process killed with SIGKILL cannot end its children; dbt, for one, keeps building
    (and locking) the warehouse. The ledger lets the next recovery end exactly those
    processes: each is named by pid and creation time, so a recycled pid is never hit.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{os.getpid()}.json"
        self.me = psutil.Process()
        self._last: list[list[float]] | None = None
        atexit.register(self.remove)

    def record(self) -> None:
        try:
            children = sorted([c.pid, c.create_time()] for c in self.me.children(recursive=True))
        except psutil.Error:
            return
        if children == self._last:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = {"pid": self.me.pid, "started": self.me.create_time(), "children": children}
        tmp.write_text(json.dumps(body), encoding="utf-8")
        os.replace(tmp, self.path)
        self._last = children

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def end_orphans(ledger_dir: Path) -> list[str]:
    """End the recorded children of processes that are gone; ``pid name`` of each ended.

    Ledgers of live processes are left alone; a ledger whose owner is gone is removed.
    """
    ended: list[str] = []
    if not ledger_dir.is_dir():
        return ended
    for path in sorted(ledger_dir.glob("*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            owner, started = int(body["pid"]), float(body["started"])
            children = [(int(pid), float(created)) for pid, created in body["children"]]
        except (OSError, ValueError, KeyError, TypeError):
            path.unlink(missing_ok=True)  # unreadable: written by a process killed mid-write
            continue
        if process_is_alive(owner, started):
            continue
        survivors = []
        for pid, created in children:
            try:
                proc = psutil.Process(pid)
                if abs(proc.create_time() - created) < 0.01:
                    survivors.append(proc)
            except psutil.Error:
                continue
        for proc in survivors:
            with contextlib.suppress(psutil.Error):
                ended.append(f"{proc.pid} {proc.name()}")
                proc.terminate()
        _, alive = psutil.wait_procs(survivors, timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        path.unlink(missing_ok=True)
    return ended


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


def _end_children(timeout: float = 2.0) -> None:
    """Terminate this process's children (dbt, git), then kill what is left."""
    try:
        children = psutil.Process().children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.terminate()
    _, alive = psutil.wait_procs(children, timeout=timeout)
    for child in alive:
        with contextlib.suppress(psutil.Error):
            child.kill()


_guard: _InterruptGuard | None = None


def guard_interrupts(grace_seconds: float = INTERRUPT_GRACE_SECONDS) -> None:
    """Make SIGINT/SIGTERM end this process within ``grace_seconds`` (+ cleanup), always.

    Call once, from the main thread, before running jobs in-process. Idempotent.
    """
    global _guard
    if _guard is not None or threading.current_thread() is not threading.main_thread():
        return
    home = os.environ.get("DAGSTER_HOME")
    _guard = _InterruptGuard(grace_seconds, Path(home) / LEDGER_DIR if home else None)
    _guard.install()


def prepare_run_process(report: Callable[[str], None]) -> RecoveryReport:
    """Before ``symbiotic run`` starts jobs: recover dead runs (one line), guard interrupts."""
    instance = dg.DagsterInstance.get()
    result = recover_dead_runs(instance)
    line = result.summary()
    if line:
        report(line)
    guard_interrupts()
    return result


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process was killed as failed and frees the concurrency "
    "slots they held, so a crashed run never blocks the next one.",
)
def dead_run_recovery_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    result = recover_dead_runs(context.instance)
    line = result.summary()
    if line:
        context.log.warning(line)
        return dg.SkipReason(line)
    return dg.SkipReason("no run left behind by a dead process")


defs = dg.Definitions(sensors=[dead_run_recovery_sensor])


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "free-after-exit":
        free_after_exit(int(sys.argv[2]), sys.argv[3:])
