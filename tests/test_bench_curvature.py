"""The curvature benchmark's protocol: warm-up, round-robin order, medians, ratios; no timing is asserted."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # bench/ is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))

from bench.curvature import run, solvers  # noqa: E402
from bench.curvature.protocol import Timed, ratios, round_robin  # noqa: E402
from bench.curvature.workloads import Workload  # noqa: E402


class FakeClock:
    """Each call to a timed function advances the clock by that function's next duration."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_round_robin_warms_up_then_calls_every_solver_once_per_round():
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name) or name) for name in ("a", "b", "c")}
    timed = round_robin(fns, repeats=3, warmup=2, clock=lambda: 0.0)
    assert calls == ["a", "b", "c"] * 5
    assert all(len(t.seconds) == 3 for t in timed.values())
    assert {n: t.result for n, t in timed.items()} == {"a": "a", "b": "b", "c": "c"}


def test_round_robin_medians_and_ratios_come_from_the_timed_rounds_only():
    clock = FakeClock()
    durations = {"ours": iter([100.0, 3.0, 1.0, 2.0]), "peer": iter([100.0, 10.0, 4.0, 40.0])}

    def make(name):
        def fn():
            clock.now += next(durations[name])

        return fn

    timed = round_robin({"ours": make("ours"), "peer": make("peer")}, repeats=3, warmup=1, clock=clock)
    assert timed["ours"].seconds == [3.0, 1.0, 2.0]  # the warm-up's 100 s is not counted
    assert timed["ours"].median == 2.0 and timed["peer"].median == 10.0
    assert ratios(timed, "ours") == {"peer": 5.0}


def test_round_robin_rejects_zero_repeats():
    with pytest.raises(ValueError):
        round_robin({"a": lambda: None}, repeats=0)


def test_median_of_an_even_number_of_runs():
    assert Timed(seconds=[4.0, 1.0, 3.0, 2.0]).median == 2.5


def test_missing_peer_gives_one_line_naming_make_bench(monkeypatch, capsys):
    monkeypatch.setattr(run, "missing_peers", lambda: ["pyhessian"])
    assert run.main(["--quick"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pyhessian" in err and "make bench" in err


# ------------------------------------------------------------ a tiny problem


def _tiny() -> Workload:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).eval()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 6, generator=g), torch.randint(0, 3, (30,), generator=g)
    return Workload("tiny", model, x, y, "tiny MLP")


def _dense_top(w: Workload, k: int) -> np.ndarray:
    params = dict(w.model.named_parameters())
    flat = torch.cat([p.detach().reshape(-1) for p in params.values()]).double()
    shapes = [(n, p.shape, p.numel()) for n, p in params.items()]

    def loss(v):
        parts, i = {}, 0
        for n, shape, size in shapes:
            parts[n] = v[i : i + size].reshape(shape)
            i += size
        return F.cross_entropy(torch.func.functional_call(w.model, parts, (w.x.double(),)), w.y)

    H = torch.autograd.functional.hessian(loss, flat)
    return np.sort(torch.linalg.eigvalsh(H).numpy())[::-1][:k].copy()


def test_eigen_rows_times_lbgap_at_its_defaults_and_the_peers_round_robin(monkeypatch):
    w, k = _tiny(), 2
    ref = _dense_top(w, k)
    order: list[str] = []
    real_default = run.lbgap_default

    def lbgap(w_, k_):
        order.append("lbgap")
        return real_default(w_, k_)

    def fake(name, reaches=True):
        def solve(w_, k_, setting):
            order.append(name)
            vals = ref if setting == "tight" and reaches else ref * 1.1
            return solvers.Solve(vals, {"loose": 1, "tight": 2}[setting])

        return solvers.Peer(name, lambda k_: ["loose", "tight"], solve, "{}")

    peers = {"p": fake("p"), "bad": fake("bad", reaches=False), "q": fake("q")}
    monkeypatch.setattr(run, "lbgap_default", lbgap)
    monkeypatch.setattr(run, "PEER_SOLVERS", peers)
    rows = run.eigen_rows(w, k, ref, argparse.Namespace(target=1e-4, repeats=3, warmup=1))
    # calibration: each peer loose then tight; then 1 warm-up + 3 timed rounds of lbgap and the peers
    # that reached the target, every one once per round
    assert order == ["p", "p", "bad", "bad", "q", "q"] + ["lbgap", "p", "q"] * 4
    assert len(rows) == 4 and "tol=0.001" in rows[0] and "verify_residuals=True" in rows[0]
    assert "| tight |" in rows[1] and "| tight |" in rows[3]
    assert "not reached (tight)" in rows[2] and "not comparable" in rows[2]
    lbgap_error = float(rows[0].split("|")[8])
    assert lbgap_error < 1e-4  # the metric's defaults reach the peers' target on this problem


@pytest.mark.skipif(bool(solvers.missing_peers()), reason="the bench extra (peers) is not installed")
def test_real_peers_reach_the_target_on_a_tiny_problem():
    w, k = _tiny(), 2
    ref = _dense_top(w, k)
    rows = run.eigen_rows(w, k, ref, argparse.Namespace(target=1e-4, repeats=1, warmup=0))
    assert len(rows) == 1 + len(solvers.PEER_SOLVERS)
    assert not any("not reached" in r for r in rows)


def test_sweep_stops_at_a_setting_that_spent_its_budget():
    tried: list[float] = []

    def solve(tol):
        tried.append(tol)
        return solvers.Solve(np.full(1, np.nan if tol < 1e-2 else 2.0), 10)

    choice = solvers.cheapest(solve, [1e-1, 1e-3, 1e-5], np.ones(1), 1e-4)
    assert tried == [1e-1, 1e-3] and not choice.reached and choice.setting == 1e-3
