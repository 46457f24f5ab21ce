"""The ``lbgap`` command line."""

from __future__ import annotations

import json
import logging
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(help="Reproducible studies of the large-batch generalization gap.", no_args_is_help=True)
study_app = typer.Typer(help="Run, resume and validate studies.", no_args_is_help=True)
plugins_app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)
app.add_typer(study_app, name="study")
app.add_typer(plugins_app, name="plugins")

#: the width of a console that is not a terminal: lines are never wrapped (pipes, files, CI logs)
PIPE_WIDTH = 10_000


def _console(stderr: bool = False) -> Console:
    """A console for stdout or stderr. On a terminal rich wraps at its width; written to a pipe
    or a file, nothing is wrapped or cut, so that ``file:line:`` messages and table rows stay
    on one line each. Colour follows rich's rules (none when not a terminal, none with
    ``NO_COLOR`` set)."""
    stream = sys.stderr if stderr else sys.stdout
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    if tty:
        return Console(stderr=stderr)
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=True)


out = _console()
err = _console(stderr=True)

EXIT_USAGE = 2


class Vectorize(StrEnum):
    auto = "auto"
    off = "off"


#: exit status of --strict when a plugin failed to load or register
EXIT_PLUGIN_FAILED = 3

_printed: set[tuple[str, str, str]] = set()


def _registry(verbose: bool = False, strict: bool = False):
    """The installed plugins. Each failure is printed once, with its traceback if ``verbose``;
    with ``strict`` a failure ends the command (exit status :data:`EXIT_PLUGIN_FAILED`)."""
    from ..registry import DuplicatePluginError, get_registry

    try:
        reg = get_registry()
    except DuplicatePluginError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    for f in reg.failures:
        key = (f.name, f.origin, f.reason)
        if key in _printed:
            continue
        _printed.add(key)
        err.print(
            f"[yellow]warning:[/] plugin {f.name!r} ({f.origin}) could not be loaded: {escape(f.reason)}",
            highlight=False,
        )
        if verbose and f.traceback:
            err.print(f.traceback.rstrip(), markup=False, highlight=False)
    if strict and reg.failures:
        err.print(f"[red]error:[/] {len(reg.failures)} plugin(s) failed to load or register (--strict)")
        raise typer.Exit(EXIT_PLUGIN_FAILED)
    return reg


def _spec_path(spec: Path) -> Path:
    """``spec``, or the shipped study of that name (``hoffer_regime``) when no such file exists."""
    if spec.exists():
        return spec
    from .studies import find_shipped

    shipped = find_shipped(str(spec)) if len(spec.parts) == 1 else None
    return shipped or spec


def _load(spec: Path, overrides: Optional[list[str]] = None):
    from ..spec import SpecError, load_study

    try:
        return load_study(_spec_path(spec), _registry(), overrides or ())
    except SpecError as exc:
        for issue in exc.issues:
            err.print(str(issue), markup=False, highlight=False)
        raise typer.Exit(EXIT_USAGE) from None


def _trial_count(study) -> int:
    if study.search is None:
        return len(study.cells())
    points = math.prod(len(v) for v in study.grid_values.values())  # one search per grid point
    return study.search.n_trials * len(study.seeds) * points


_OVERRIDES_HELP = (
    "Overrides KEY=VALUE: a dotted path into base, a variant or the grid, and a YAML value "
    "(base.epochs=2, variants.lb.batch_size=2048, grid.optimizer.lr=[0.1,0.01])."
)


def _run(
    study,
    out_dir: Path,
    device: str,
    storage: Optional[str],
    report: bool,
    max_trials: Optional[int],
    nproc: int = 1,
    jobs: Optional[int] = None,
    threads: int = 1,
    vectorize: Optional[str] = None,
) -> None:
    from ..driver.run import FolderBusyError, StudyFolderError, default_jobs, run_study
    from ..results.trialfile import WriteFailedError
    from .progress import RichReporter

    try:
        if study.search is not None:
            if jobs is not None and jobs > 1:
                err.print("[yellow]note:[/] a search trains its trials one after another; --jobs does not apply")
            jobs = 1
        elif jobs is None:
            jobs = default_jobs(device, threads=threads, storage=storage, nproc=nproc)
        with RichReporter(err) as reporter:
            summary = run_study(
                study, out_dir, device=device, storage=storage, reporter=reporter, max_trials=max_trials,
                nproc=nproc, jobs=jobs, threads=threads, vectorize=vectorize,
            )
    except (StudyFolderError, FolderBusyError) as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None
    except ValueError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None
    except KeyboardInterrupt:
        err.print(f"[yellow]interrupted:[/] finished trials are kept; continue with `lbgap study resume {out_dir}`")
        raise typer.Exit(130) from None
    except WriteFailedError as exc:
        err.print(
            f"[red]error:[/] {escape(exc.strerror or str(exc))}\nevery finished trial is kept in {escape(str(out_dir))}/trials; "
            f"make room and continue with `lbgap study resume {escape(str(out_dir))}` (nothing is trained again)"
        )
        raise typer.Exit(1) from None
    if summary.diverged:
        err.print(f"[yellow]{len(summary.diverged)} trial(s) diverged[/] (recorded with status 'diverged')")
    if summary.failed:
        err.print(
            f"[red]{len(summary.failed)} trial(s) failed:[/] {', '.join(summary.failed)}; "
            f"retry them with `lbgap study resume {escape(str(out_dir))}`"
        )
    if summary.results is None:
        err.print(f"[yellow]the study is not finished[/]; continue with `lbgap study resume {out_dir}`")
        raise typer.Exit(1 if summary.failed else 0)
    out.print(f"results: {summary.results}")
    if report:
        from ..report import make_report

        md = make_report(out_dir)
        out.print(f"report: {md}")
    if summary.failed:
        raise typer.Exit(1)


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


def _setup_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False)],
    )


@study_app.command("run")
def study_run(
    spec: Path = typer.Argument(..., help="The study file (YAML), or the name of a shipped study (lbgap study list)."),
    overrides: Optional[list[str]] = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Output folder (default runs/<study name>)."),
    device: str = typer.Option("auto", help="cpu, cuda, cuda:N or auto."),
    storage: Optional[str] = typer.Option(
        None, help="Optuna storage URL for many workers (postgresql://...); default: a journal file in the output folder."
    ),
    report: bool = typer.Option(True, help="Write figures and a summary after the run."),
    max_trials: Optional[int] = typer.Option(None, help="Stop after training this many trials (resume later)."),
    nproc: int = typer.Option(1, min=1, help="Train each trial data-parallel on this many processes (torchrun)."),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1,
        help="Train this many trials at once, in worker processes sharing the study (default: every core at "
        "--threads each on the CPU, one per GPU with --device cuda; 1 with --storage or --nproc). "
        "The results equal those of --jobs 1. A search trains one trial at a time.",
    ),
    threads: int = typer.Option(
        1, min=1, help="CPU threads for torch. The small networks of these studies train fastest on one; "
        "more threads pay off only for wide layers and large batches on an otherwise idle machine.",
    ),
    vectorize: Optional[Vectorize] = typer.Option(
        None, "--vectorize", help="auto: train trials that can share a stacked model together where that is "
        "faster on the device; off: one at a time. Default: the study's `vectorize` (auto). The results are the same.",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Check that every variant starts (a few training steps and one evaluation "
        "batch each, on --device) and estimate the time of its trials; write nothing. "
        "Exit status 2 if one fails.",
    ),
    steps: Optional[int] = typer.Option(
        None, "--steps", min=1,
        help="With --dry-run: training steps per variant (default 2; the first is not timed).",
    ),
    strict: bool = typer.Option(
        False, "--strict", help=f"Exit with status {EXIT_PLUGIN_FAILED} before running if any installed plugin failed to load."
    ),
    as_json: bool = typer.Option(False, "--json", help="With --dry-run: the findings as JSON on stdout."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Run a study (or continue it, if its output folder exists).

    KEY=VALUE overrides change settings for this run; the output folder keeps the resolved
    study (spec.yaml), so `lbgap study resume` needs none.
    """
    _setup_logging(verbose)
    _set_threads(threads)
    _registry(verbose=verbose, strict=strict)
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        err.print(f"[red]error:[/] --device must be cpu, cuda, cuda:N or auto, not {device!r}")
        raise typer.Exit(EXIT_USAGE)
    if steps is not None and not dry_run:
        err.print("[red]error:[/] --steps applies to --dry-run")
        raise typer.Exit(EXIT_USAGE)
    if as_json and not dry_run:
        err.print("[red]error:[/] --json applies to --dry-run")
        raise typer.Exit(EXIT_USAGE)
    study = _load(spec, overrides)
    if dry_run:
        if nproc > 1:
            err.print("[yellow]note:[/] --dry-run trains in one process; --nproc is ignored")
        _dry_run(
            study, device, steps or 2, threads, jobs, storage, nproc, vectorize.value if vectorize is not None else None,
            as_json=as_json, out_dir=out_dir or Path("runs") / study.name,
        )
        return
    _run(
        study, out_dir or Path("runs") / study.name, device, storage, report, max_trials, nproc, jobs, threads,
        vectorize.value if vectorize is not None else None,
    )


def _dry_run(
    study, device: str, steps: int, threads: int, jobs: Optional[int] = None, storage: Optional[str] = None,
    nproc: int = 1, vectorize: Optional[str] = None, as_json: bool = False, out_dir: Optional[Path] = None,
) -> None:
    from rich.markup import escape

    from ..driver.dryrun import dry_run
    from ..driver.run import default_jobs, resolve_device
    from .dryrun import print_dry_run

    try:
        dev = resolve_device(device)
        if jobs is None:  # a search trains one trial at a time: no note unless --jobs was asked for
            jobs = 1 if study.search is not None else default_jobs(device, threads=threads, storage=storage, nproc=nproc)
    except ValueError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None
    # the engine's warnings (a diverged loss, a batch larger than the data) are in the report
    logging.getLogger("lbgap.engine.train").setLevel(logging.ERROR)
    try:
        with err.status("dry run") as status:
            report = dry_run(
                study, device=dev, steps=steps,
                progress=lambda i, n, label: status.update(escape(f"dry run {i + 1}/{n}: {label}")),
                vectorize=vectorize or study.header.vectorize,
            )
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]")
        raise typer.Exit(130) from None
    if as_json:
        from .dryrun import dry_run_json

        sys.stdout.write(json.dumps(dry_run_json(report, threads, jobs), indent=2, default=str) + "\n")
    else:
        print_dry_run(report, out, err, threads, jobs=jobs, out_dir=out_dir)
    if report.failed:
        raise typer.Exit(EXIT_USAGE)


@study_app.command("resume")
def study_resume(
    out_dir: Path = typer.Argument(..., help="The output folder of an interrupted run."),
    device: str = typer.Option("auto"),
    report: bool = typer.Option(True),
    threads: int = typer.Option(1, min=1, help="CPU threads for torch (see study run)."),
    jobs: Optional[int] = typer.Option(
        None, "--jobs", "-j", min=1, help="Trials trained at once, in worker processes (see study run)."
    ),
    vectorize: Optional[Vectorize] = typer.Option(None, "--vectorize", help="auto or off (see study run)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Continue an interrupted study without redoing finished trials."""
    _setup_logging(verbose)
    _set_threads(threads)
    spec = out_dir / "spec.yaml"
    meta = out_dir / "study.json"
    if not spec.exists() or not meta.exists():
        err.print(f"[red]error:[/] {out_dir} is not a study folder (no spec.yaml/study.json)")
        raise typer.Exit(EXIT_USAGE)
    storage = json.loads(meta.read_text()).get("storage")
    study = _load(spec)
    _run(
        study, out_dir, device, storage, report, None, jobs=jobs, threads=threads,
        vectorize=vectorize.value if vectorize is not None else None,
    )


@study_app.command("validate")
def study_validate(
    spec: list[Path] = typer.Argument(..., help="Study files (or names of shipped studies)."),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object on stdout: each file with its study and trials, or its errors."
    ),
) -> None:
    """Check study files; print their trials. Exit status 2 on a bad file."""
    bad = False
    from ..spec import SpecError, load_study

    reg = _registry()
    files = []
    for path in spec:
        try:
            study = load_study(_spec_path(path), reg)
        except SpecError as exc:
            bad = True
            files.append({"file": str(path), "ok": False, "errors": [
                {"file": i.file, "line": i.line, "path": i.path, "message": i.message} for i in exc.issues
            ]})
            if not as_json:
                for issue in exc.issues:
                    err.print(str(issue), markup=False, highlight=False)
            continue
        n = _trial_count(study)
        files.append({
            "file": str(path), "ok": True, "study": study.name, "variants": list(study.variants), "trials": n,
            "spec_sha256": study.spec_hash,
        })
        if not as_json:
            out.print(
                f"{path}: ok — study {study.name!r}, {len(study.variants)} variant(s), {n} trial(s)",
                markup=False, highlight=False,
            )
    if as_json:
        sys.stdout.write(json.dumps({"ok": not bad, "files": files}, indent=2) + "\n")
    if bad:
        raise typer.Exit(EXIT_USAGE)


@study_app.command("show")
def study_show(
    spec: Path = typer.Argument(..., help="The study file (YAML), or the name of a shipped study."),
    overrides: Optional[list[str]] = typer.Argument(None, help=_OVERRIDES_HELP, show_default=False),
) -> None:
    """Print the resolved study (its extends and overrides applied) as YAML, and its trial count.

    The output is itself a study file: run it, or keep it, as it is.
    """
    study = _load(spec, overrides)
    text = study.text or Path(study.file).read_text()
    n = _trial_count(study)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.write(
        f"# study {study.name}: {len(study.variants)} variant(s), {n} trial(s); spec hash {study.spec_hash[:12]}\n"
    )


@study_app.command("list")
def study_list(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """The study files shipped with lbgap: run one by name (lbgap study run NAME) or copy it to edit."""
    from .studies import shipped_dir, shipped_studies

    rows = [
        {"name": s.name, "scale": s.scale, "reproduces": s.reproduces, "path": str(s.path)} for s in shipped_studies()
    ]
    if as_json:
        sys.stdout.write(json.dumps({"folder": str(shipped_dir() or ""), "studies": rows}, indent=2) + "\n")
        return
    if not rows:
        err.print("[yellow]note:[/] this installation ships no study files")
        return
    table = Table(title=f"studies shipped with lbgap ({escape(str(shipped_dir()))})", title_justify="left")
    for col in ("name", "scale", "reproduces"):
        table.add_column(col)
    for r in rows:
        table.add_row(escape(r["name"]), r["scale"], escape(r["reproduces"]))
    out.print(table)


@study_app.command("copy")
def study_copy(
    name: str = typer.Argument(..., help="A shipped study's name (lbgap study list)."),
    dest: Optional[Path] = typer.Argument(None, help="The file or folder to write (default: NAME.yaml here)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
) -> None:
    """Write an editable copy of a shipped study (and of the files it extends)."""
    from .studies import find_shipped, shipped_studies

    src = find_shipped(name)
    if src is None:
        import difflib

        known = [s.name for s in shipped_studies()]
        hint = difflib.get_close_matches(name, known, n=3)
        extra = f" (did you mean {', '.join(repr(h) for h in hint)}?)" if hint else ""
        err.print(f"[red]error:[/] no shipped study {escape(repr(name))}{extra}; see `lbgap study list`", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    target = dest if dest is not None else Path(src.name)
    if target.is_dir():
        target = target / src.name
    copies = [(src, target)]
    # a study that extends another needs its parents beside it
    from ..spec.yamlio import YAMLSyntaxError, load_yaml

    here, there = src, target
    for _ in range(8):
        try:
            parent = load_yaml(here).data.get("extends")
        except (OSError, YAMLSyntaxError):
            break
        if not isinstance(parent, str):
            break
        here, there = here.parent / parent, there.parent / parent
        copies.append((here, there))
    clash = [t for _, t in copies if t.exists()]
    if clash and not force:
        err.print(f"[red]error:[/] {escape(str(clash[0]))} exists (--force overwrites it)", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    for s, t in copies:
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_text(s.read_text(encoding="utf-8"), encoding="utf-8")
        out.print(f"wrote {t}", markup=False, highlight=False)


@plugins_app.command("list")
def plugins_list(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    strict: bool = typer.Option(
        False, "--strict", help=f"Exit with status {EXIT_PLUGIN_FAILED} if any plugin failed to load or register."
    ),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the traceback of each failed plugin."),
) -> None:
    """Every installed plugin with its kind, origin package and version."""
    reg = _registry(verbose=verbose)
    rows = [
        {"kind": r.kind, "name": r.name, "origin": r.origin, "version": r.version, "summary": r.describe()}
        for r in reg.all_records()
    ]
    failures = [
        {"name": f.name, "origin": f.origin, "reason": f.reason, **({"traceback": f.traceback} if verbose else {})}
        for f in reg.failures
    ]
    if as_json:
        out.print_json(json.dumps({"plugins": rows, "failed": failures}))
    else:
        table = Table(title="lbgap plugins")
        for col in ("kind", "name", "origin", "version", "summary"):
            table.add_column(col)
        for r in rows:
            table.add_row(*(escape(r[c]) for c in ("kind", "name", "origin", "version", "summary")))
        out.print(table)
    if strict and reg.failures:
        err.print(f"[red]error:[/] {len(reg.failures)} plugin(s) failed to load or register (--strict)")
        raise typer.Exit(EXIT_PLUGIN_FAILED)


def _type_name(annotation) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace("typing_extensions.", "")


_BOUNDS = {"gt": ">", "ge": "≥", "lt": "<", "le": "≤", "multiple_of": "multiple of", "min_length": "length ≥",
           "max_length": "length ≤"}


def _constraint(meta) -> str:
    """``Gt(gt=0)`` → ``> 0``."""
    for attr, symbol in _BOUNDS.items():
        if hasattr(meta, attr):
            return f"{symbol} {getattr(meta, attr)}"
    return str(meta)


def _plugin_settings(rec) -> list[dict]:
    """The configuration fields of a plugin record: name, type, default, description."""
    from pydantic_core import PydanticUndefined

    rows = []
    for name, info in rec.config.model_fields.items():
        constraints = [_constraint(m) for m in info.metadata if type(m).__module__.startswith("annotated_types")]
        if info.is_required():
            default = "required"
        else:
            value = info.get_default(call_default_factory=True)
            default = "required" if value is PydanticUndefined else json.dumps(value, default=str)
        rows.append({
            "name": name,
            "type": _type_name(info.annotation) + (f" ({', '.join(constraints)})" if constraints else ""),
            "default": default,
            "description": " ".join((info.description or "").split()),
        })
    return rows


@plugins_app.command("show")
def plugins_show(
    name: str = typer.Argument(..., help="A plugin's name (as in a study file)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="The plugin's kind, where names are shared across kinds."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show the traceback of each failed plugin."),
) -> None:
    """A plugin's settings (types, defaults, descriptions), documentation, package and hooks."""
    import difflib
    import inspect

    reg = _registry(verbose=verbose)
    found = [r for r in reg.find(name) if kind is None or r.kind == kind]
    if not found:
        failed = [f for f in reg.failures if f.name == name]
        known = sorted({r.name for r in reg.all_records() if kind is None or r.kind == kind})
        hint = difflib.get_close_matches(name, known, n=3)
        msg = f"no installed {kind or ''} plugin {name!r}".replace("  ", " ")
        if failed:
            msg += f"; the package entry point {name!r} ({failed[0].origin}) failed to load: {failed[0].reason}"
        elif hint:
            msg += f" (did you mean {', '.join(repr(h) for h in hint)}?)"
        err.print(f"[red]error:[/] {escape(msg)}", highlight=False)
        raise typer.Exit(EXIT_USAGE)
    docs = []
    for rec in found:
        docs.append({
            "kind": rec.kind,
            "name": rec.name,
            "origin": rec.origin,
            "version": rec.version,
            "summary": rec.describe(),
            "doc": inspect.cleandoc(rec.config.__doc__ or ""),
            "build_doc": inspect.cleandoc(getattr(rec.build, "__doc__", None) or ""),
            "settings": _plugin_settings(rec),
            "entry_point": reg.registered_by.get((rec.kind, rec.name), ""),
            "hooks": reg.hooks_of(rec),
        })
    if as_json:
        out.print_json(json.dumps(docs))
        return
    for d in docs:
        out.print(f"[bold]{d['kind']} {d['name']!r}[/] — {escape(d['origin'])} {escape(d['version'])}", highlight=False)
        if d["doc"]:
            out.print(d["doc"], markup=False, highlight=False)
        if d["build_doc"] and d["build_doc"] != d["doc"]:
            out.print(d["build_doc"], markup=False, highlight=False)
        table = Table(title="settings", title_justify="left")
        for col in ("field", "type", "default", "description"):
            table.add_column(col)
        table.add_row("name", "str", json.dumps(d["name"]), "selects this plugin")
        for row in d["settings"]:
            table.add_row(row["name"], escape(row["type"]), escape(row["default"]), escape(row["description"]))
        out.print(table)
        out.print(
            f"hooks implemented by its module (entry point {d['entry_point']!r} of {escape(d['origin'])}): "
            f"{', '.join(d['hooks']) or 'none'}",
            highlight=False,
        )


@app.command("schema")
def schema(output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to a file instead of stdout.")) -> None:
    """Print the JSON Schema of study files with the installed plugins."""
    from ..spec.schema import study_json_schema

    text = json.dumps(study_json_schema(_registry()), indent=2)
    if output:
        output.write_text(text + "\n")
    else:
        sys.stdout.write(text + "\n")


@app.command("report")
def report(
    out_dir: Path = typer.Argument(..., help="A study output folder holding results.nc."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Figures (PNG) and a markdown summary of a finished study.

    Each plugin's figures are drawn on their own: one that fails is named (with its traceback in
    the log), the others are drawn, and the exit status is 1.
    """
    from ..report import build_report

    _setup_logging(verbose)
    if not (out_dir / "results.nc").exists():
        err.print(f"[red]error:[/] {out_dir / 'results.nc'} does not exist (is the study finished?)")
        raise typer.Exit(EXIT_USAGE)
    made = build_report(out_dir, _registry(verbose=verbose))
    out.print(f"report: {made.path}")
    if made.failures:
        names = ", ".join(f.plugin for f in made.failures)
        err.print(f"[red]error:[/] the figures of {escape(names)} failed; the others were drawn", highlight=False)
        raise typer.Exit(1)


@app.command("measure")
def measure(
    out_dir: Path = typer.Argument(..., help="A finished study's output folder."),
    metric: list[str] = typer.Option(
        ..., "--metric", "-m",
        help="A metric configuration as YAML, e.g. '{name: keskar_sharpness, eps: [1.0e-3]}' or just a plugin name.",
    ),
    reference_variant: Optional[str] = typer.Option(
        None, "--reference-variant", help="Pairwise metrics: compare each trial with this variant's trial (same seed and grid point)."
    ),
    variant: Optional[list[str]] = typer.Option(None, "--variant", help="Measure only these variants."),
    device: str = typer.Option("cpu"),
    threads: int = typer.Option(1, min=1, help="CPU threads for torch."),
) -> None:
    """Measure saved weights of a finished study and add the values to results.nc."""
    _set_threads(threads)
    from ..measure import MeasureError, measure_study
    from ..spec.yamlio import YAMLSyntaxError, load_yaml

    items = []
    for text in metric:
        try:
            doc = load_yaml("--metric", f"m: {text}").data["m"]
        except YAMLSyntaxError as exc:
            err.print(f"[red]error:[/] --metric {text!r}: {exc.message}")
            raise typer.Exit(EXIT_USAGE) from None
        items.append({"name": doc} if isinstance(doc, str) else doc)
    try:
        with err.status("measuring") as status:
            ds = measure_study(out_dir, items, reference_variant=reference_variant, variants=variant,
                               device=device, registry=_registry(), progress=lambda m: status.update(m))
    except MeasureError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(EXIT_USAGE) from None
    out.print(f"updated {out_dir / 'results.nc'}: {', '.join(sorted(ds.data_vars))}")


@app.command("dashboard")
def dashboard(
    out_dir: Path = typer.Argument(..., help="A study's output folder (it holds study.json)."),
    port: int = typer.Option(8080, "--port", "-p", min=1, max=65535, help="The port to listen on."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="The address to listen on (the default: this machine only; the dashboard "
        "has no login, so expose it with care)."
    ),
    storage: Optional[str] = typer.Option(
        None, help="An Optuna storage URL instead of the folder's (a run with --storage records its URL)."
    ),
) -> None:
    """Open a study's Optuna storage in optuna-dashboard (the `dashboard` extra:
    pip install 'lbgap[dashboard]').

    The Optuna study of a lbgap study is named <study>-<first 12 hex digits of the spec hash>;
    its storage is the folder's optuna.journal, or the PostgreSQL URL the run was given.
    """
    try:
        from optuna_dashboard import run_server
    except ImportError as exc:
        err.print(
            "[red]error:[/] optuna-dashboard is not installed; install lbgap's `dashboard` extra: "
            f"pip install 'lbgap\\[dashboard]' (or pip install optuna-dashboard) ({escape(str(exc))})",
            highlight=False,
        )
        raise typer.Exit(EXIT_USAGE) from None
    meta_path = out_dir / "study.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        err.print(f"[red]error:[/] {escape(str(out_dir))} is not a study folder (no readable study.json)", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    from ..driver.storage import make_storage

    url = storage or meta.get("storage")
    name = f"{meta.get('study', '?')}-{str(meta.get('spec_sha256', ''))[:12]}"
    where = url.split("@")[-1] if url else str(out_dir / "optuna.journal")  # no password in the output
    store = make_storage(out_dir, url)
    out.print(
        f"optuna-dashboard on http://{host}:{port}/ for the Optuna study {name} ({where}); Ctrl-C stops it",
        markup=False, highlight=False,
    )
    try:
        run_server(store, host=host, port=port)
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        err.print(f"[red]error:[/] cannot serve on {escape(host)}:{port}: {escape(str(exc))}", highlight=False)
        raise typer.Exit(EXIT_USAGE) from None


def main() -> None:
    app()
