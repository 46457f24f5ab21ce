"""Parallel workers on one machine: ``lbgap study run --jobs N``.

The run that holds the output folder (the parent) prepares the study and queues its cells,
then starts N - 1 worker processes (``multiprocessing``, *spawn* context) and trains beside
them as the N-th. Every one of them opens the same embedded journal (``DIR/optuna.journal``,
shared through Optuna's file lock; see :mod:`lbgap.driver.storage`) and runs the very loop
of a single-process run (:func:`lbgap.driver.gridloop.grid_loop`): take a queued cell with
``ask()``, train it on ``threads`` torch threads, write its file, ``tell()``. There is no
scheduler of our own: the queue is Optuna's.

- **Progress.** Each worker sends its reporter events and log records to the parent through
  a pipe of its own (a pipe with one writer cannot be left locked by a writer killed while
  writing, as a shared queue can); the parent hands them to its reporter, which shows one
  line per running trial.
- **Killed worker.** Its pipe ends; the parent notes the trial it was training as lost, and
  the others train the rest of the queue. Once every worker has exited, the parent fails the
  trials left RUNNING, so that the next run (``lbgap study resume``) trains them again.
- **Killed parent.** A worker asks the kernel to kill it when its parent dies
  (``prctl(PR_SET_PDEATHSIG)`` on Linux) and, elsewhere, notices by polling ``getppid()``:
  no worker outlives its run and writes into a folder that the next run holds.
- **Same numbers.** A trial is a deterministic function of its configuration and seed, and
  every worker trains with the thread count of a single-process run, so ``results.nc`` is the
  same whatever the number of workers (apart from the timing variables).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Optional

__all__ = ["run_workers", "RegistrySource"]

log = logging.getLogger(__name__)

#: seconds the parent gives interrupted workers to record their trials as failed
_INTERRUPT_GRACE_S = 10.0
#: at most this many step events per second per worker go to the parent
_STEP_EVENTS_PER_S = 4.0


# ------------------------------------------------------------------ the registry in a worker


@dataclass
class RegistrySource:
    """How a worker rebuilds the parent's plugin registry.

    The process-wide registry (installed entry points) is loaded again by the worker. Another
    registry (built with :meth:`lbgap.registry.Registry.from_plugins`, as tests do) is rebuilt
    from its plugin modules, imported by name or, where that fails, from their files.
    """

    entry_points: bool
    #: (pluggy name, module name or None, module file or None, plugin object or None, origin, version)
    plugins: list[tuple[str, Optional[str], Optional[str], Any, str, str]] = field(default_factory=list)

    @classmethod
    def of(cls, registry: Any) -> RegistrySource:
        from .. import registry as registry_module

        if registry is getattr(registry_module, "_CACHE", None):
            return cls(True)
        plugins = []
        for name, plugin in registry.pm.list_name_plugin():
            origin, version = registry.packages.get(name, ("", ""))
            if isinstance(plugin, type(sys)):
                plugins.append((name, plugin.__name__, getattr(plugin, "__file__", None), None, origin, version))
            else:  # an object registered as a plugin: pickled as it is
                plugins.append((name, None, None, plugin, origin, version))
        return cls(False, plugins)

    def build(self) -> Any:
        from ..registry import Registry, get_registry

        if self.entry_points:
            return get_registry()
        loaded = []
        for name, module_name, module_file, obj, origin, version in self.plugins:
            if obj is None:
                obj = _import_module(module_name, module_file)
            loaded.append((name, obj, origin, version))
        return Registry.from_plugins(loaded)


def _import_module(name: str, file: Optional[str]) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except ImportError:
        if file is None:
            raise
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the plugin module {name} from {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------ worker side


@dataclass
class _WorkerJob:
    index: int
    parent_pid: int
    out_dir: str
    storage_url: Optional[str]
    device: str
    threads: int
    max_trials: Optional[int]
    spec_text: str
    spec_file: str
    spec_hash: str
    registry: RegistrySource
    log_level: int
    vectorize: str = "auto"


class _PipeReporter:
    """A reporter that sends its events to the parent."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._last_step = 0.0

    def _send(self, name: str, *args: Any) -> None:
        self.conn.send(("report", name, args))

    def study_start(self, total: int, done: int) -> None:
        pass  # the parent knows the study's size

    def trial_start(self, key: str, epochs: int, steps_per_epoch: int) -> None:
        self._send("trial_start", key, epochs, steps_per_epoch)

    def step(self, key: str, step: int) -> None:
        now = time.monotonic()
        if now - self._last_step >= 1.0 / _STEP_EVENTS_PER_S:
            self._last_step = now
            self._send("step", key, step)

    def epoch_end(self, key: str, epoch: int, record: dict[str, Any]) -> None:
        self._send("epoch_end", key, epoch, {k: v for k, v in record.items() if isinstance(v, (int, float, str))})

    def trial_end(self, key: str, status: str, summary: str) -> None:
        self._send("trial_end", key, status, summary)

    def skipped(self, count: int) -> None:
        self._send("skipped", count)

    def trial_lost(self, key: str, reason: str) -> None:
        self._send("trial_lost", key, reason)


class _PipeLogHandler(logging.Handler):
    """Sends a worker's log records to the parent, which logs them with its own handlers."""

    def __init__(self, conn: Connection, index: int) -> None:
        super().__init__()
        self.conn = conn
        self.index = index

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            self.conn.send(("log", record.levelno, record.name, f"[worker {self.index}] {message}"))
        except Exception:  # the parent is gone: nothing to tell
            pass


def _die_with_parent(parent_pid: int) -> None:
    """End this process when its parent dies, even by ``kill -9``."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            pr_set_pdeathsig = 1
            libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the request above
        os._exit(1)

    def watch() -> None:  # where prctl is missing: poll
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="lbgap-parent-watch", daemon=True).start()


def worker_main(job: _WorkerJob, conn: Connection, taken: Any, gate: Any) -> None:
    """A worker process: rebuild the study and run the grid loop on the shared storage.

    ``gate``: a shared array; ``gate[0]`` is set by the parent once the queue is empty, and a
    worker sets ``gate[index]`` when it passes the gate, before it touches the storage."""
    _die_with_parent(job.parent_pid)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(_PipeLogHandler(conn, job.index))
    root.setLevel(job.log_level)
    try:
        import optuna
        import torch

        from ..spec.load import load_study_text
        from .cells import GridPlan
        from .gridloop import grid_loop
        from .optuna_study import open_optuna_study
        from .runner import Runner, resolve_device
        from .storage import folder_lock

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        optuna.logging.disable_default_handler()
        optuna.logging.enable_propagation()
        torch.set_num_threads(job.threads)
        study = load_study_text(job.spec_text, job.spec_file, job.registry.build())
        if study.spec_hash != job.spec_hash:
            raise RuntimeError(f"the worker read another spec (hash {study.spec_hash[:12]} ≠ {job.spec_hash[:12]})")
        out_dir = Path(job.out_dir)
        runner = Runner(study, out_dir, resolve_device(job.device), _PipeReporter(conn), vectorize=job.vectorize)
        with folder_lock(out_dir):  # the gate: see _close_gate
            if gate[0]:
                conn.send(("done", 0, [], []))
                return
            gate[job.index] = 1
        ostudy = open_optuna_study(study, out_dir, job.storage_url, "maximize", fail_stale=False)
        trained, failed, diverged = grid_loop(study, GridPlan.of(study), runner, ostudy, job.max_trials, taken)
        conn.send(("done", trained, failed, diverged))
    except KeyboardInterrupt:
        _send_last(conn, ("interrupted",))
        sys.exit(130)
    except BaseException as exc:
        logging.getLogger(__name__).exception("worker %d failed", job.index)
        _send_last(conn, ("error", f"{type(exc).__name__}: {exc}"))
        sys.exit(1)
    finally:
        conn.close()


def _send_last(conn: Connection, msg: tuple) -> None:
    try:
        conn.send(msg)
    except OSError:  # the parent is gone
        pass


# ------------------------------------------------------------------ parent side


@dataclass
class _Worker:
    index: int
    process: Any
    conn: Optional[Connection]
    running: Optional[str] = None  # the key of the trial it trains
    result: Optional[tuple] = None  # its last message: done, interrupted or error


def _worker_device(device: Any, index: int) -> str:
    import torch

    if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
        return f"cuda:{index % torch.cuda.device_count()}"
    return str(device)


def run_workers(
    study: Any,
    runner: Any,
    storage_url: Optional[str],
    jobs: int,
    max_trials: Optional[int],
    threads: int,
    local: Callable[[Any], tuple[int, list[str], list[str]]],
    on_lost: Optional[Callable[[str], None]] = None,
) -> tuple[int, list[str], list[str]]:
    """Train the queued cells of ``study`` with ``jobs`` workers: this process, which runs
    ``local(taken)`` (the grid loop) while it starts the others, and ``jobs - 1`` worker
    processes. Return (trained, failed, diverged) over all of them. The caller has queued the
    cells and holds the folder. ``on_lost(key)`` is called when a worker dies while it trains
    the cell ``key``.

    This process trains too, so that it does not idle while the workers start (importing
    torch and the plugins takes seconds) nor while they train.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    taken = ctx.Value("q", 0) if max_trials is not None else None
    source = RegistrySource.of(study.registry)
    text = study.text or Path(study.file).read_text()
    level = logging.getLogger().getEffectiveLevel()
    gate = ctx.Array("b", jobs)  # see _close_gate
    workers: list[_Worker] = []
    server: Optional[threading.Thread] = None
    omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read by torch when a worker imports it
    try:
        for i in range(1, jobs):
            job = _WorkerJob(
                index=i,
                parent_pid=os.getpid(),
                out_dir=str(runner.out_dir),
                storage_url=storage_url,
                device=_worker_device(runner.device, i),
                threads=threads,
                max_trials=max_trials,
                spec_text=text,
                spec_file=str(study.file),
                spec_hash=study.spec_hash,
                registry=source,
                log_level=level,
                vectorize=runner.vectorize,
            )
            reader, writer = ctx.Pipe(duplex=False)
            proc = ctx.Process(target=worker_main, args=(job, writer, taken, gate), name=f"lbgap-worker-{i}", daemon=True)
            proc.start()
            writer.close()
            workers.append(_Worker(i, proc, reader))
        _restore_env("OMP_NUM_THREADS", omp)
        log.info("started %d worker process(es) beside this one", jobs - 1)
        reporter = runner.reporter = _LockedReporter(runner.reporter)  # this thread and the server's
        server = threading.Thread(
            target=_serve, args=(workers, reporter, on_lost), name="lbgap-workers", daemon=True
        )
        server.start()
        trained, failed, diverged = local(taken)
        _close_gate(workers, gate, runner.out_dir)
        server.join()
    except KeyboardInterrupt:
        _interrupt(workers)
        raise
    finally:
        _restore_env("OMP_NUM_THREADS", omp)
        if isinstance(runner.reporter, _LockedReporter):
            runner.reporter = runner.reporter.inner
        for w in workers:
            if w.process.is_alive():
                w.process.kill()
            w.process.join()
        if server is not None:
            server.join(timeout=5.0)
    more = _summarize(workers, runner.reporter)
    return trained + more[0], failed + more[1], diverged + more[2]


class _LockedReporter:
    """A reporter called by two threads (this process's training and the workers' server) in turn."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(*args: Any) -> Any:
            with self.lock:
                return method(*args)

        return call


def _close_gate(workers: list[_Worker], gate: Any, out_dir: Path) -> None:
    """Once this process has found the queue empty, end the workers that are still starting.

    A worker passes the gate (under the folder lock) before it opens the storage; a worker
    that has not passed it holds no trial and has written nothing, so ending it loses nothing,
    and saves the seconds it would spend importing torch only to find the queue empty.
    """
    from .storage import folder_lock

    with folder_lock(out_dir):
        gate[0] = 1
        for w in workers:
            if not gate[w.index] and w.process.is_alive():
                w.result = ("done", 0, [], [])  # before the kill: the server reads it at the pipe's end
                w.process.kill()


def _restore_env(name: str, value: Optional[str]) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _serve(workers: list[_Worker], reporter: Any, on_lost: Optional[Callable[[str], None]] = None) -> None:
    """Hand the workers' events to ``reporter`` until every worker has exited."""
    while True:
        conns = [w.conn for w in workers if w.conn is not None]
        if not conns:
            break
        for conn in wait(conns, timeout=1.0):
            worker = next(w for w in workers if w.conn is conn)
            try:
                msg = conn.recv()
            except (EOFError, OSError):  # the worker exited, or was killed
                conn.close()
                worker.conn = None
                lost = worker.result is None or worker.result[0] == "error"
                if lost and worker.running is not None and on_lost is not None:
                    try:
                        on_lost(worker.running)
                    except Exception:
                        log.exception("could not record the trial %s of worker %d as failed", worker.running, worker.index)
                continue
            try:
                _dispatch(worker, msg, reporter)
            except Exception:  # a display error must not stop the workers' pipes being read
                log.exception("could not show a worker's event %r", msg[:2])


def _dispatch(worker: _Worker, msg: tuple, reporter: Any) -> None:
    kind = msg[0]
    if kind == "report":
        _, name, args = msg
        if name == "trial_start":
            worker.running = args[0]
        elif name in ("trial_end", "trial_lost"):
            worker.running = None
        method = getattr(reporter, name, None)
        if method is not None:
            method(*args)
    elif kind == "log":
        _, level, name, message = msg
        logging.getLogger(name).log(level, "%s", message)
    else:
        worker.result = msg


def _interrupt(workers: list[_Worker]) -> None:
    """Ctrl-C: let the workers record their trials as failed, then end them."""
    for w in workers:
        if w.process.is_alive():
            try:
                os.kill(w.process.pid, signal.SIGINT)  # a terminal has sent it already; a kill has not
            except OSError:
                pass
    deadline = time.monotonic() + _INTERRUPT_GRACE_S
    for w in workers:
        w.process.join(max(0.0, deadline - time.monotonic()))


def _summarize(workers: list[_Worker], reporter: Any) -> tuple[int, list[str], list[str]]:
    trained, failed, diverged = 0, [], []
    for w in workers:
        if w.result is not None and w.result[0] == "done":
            trained += w.result[1]
            failed += w.result[2]
            diverged += w.result[3]
            continue
        code = w.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        if w.result is not None and w.result[0] == "error":
            how += f": {w.result[1]}"
        if w.running is not None:
            log.warning("worker %d ended (%s) while training %s; the next run trains it again", w.index, how, w.running)
            lost = getattr(reporter, "trial_lost", None)
            if lost is not None:
                lost(w.running, f"worker {w.index} ended ({how})")
            failed.append(w.running)
        else:
            log.warning("worker %d ended (%s)", w.index, how)
    return trained, failed, diverged
