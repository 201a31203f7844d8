"""Metaflow's core test suite, run against workbench (see runner.py and NOTICE).

By default a CI subset runs (one pair per test on the smallest graph it runs on, plus the pairs in
CI_EXTRA: a few minutes); ``WORKBENCH_CONFORMANCE=all`` runs every counted pair;
``WORKBENCH_CONFORMANCE=0`` runs none. Pairs run in parallel processes (``WORKBENCH_CONFORMANCE_JOBS``,
default 2) once per session; each pair is then one test. A pair listed in skips.SKIPPED is a strict
expected failure: when it starts to pass, the test fails until the entry is removed.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import runner
from skips import SLOW_WHILE_FAILING

MODE = os.environ.get("WORKBENCH_CONFORMANCE", "ci").lower()
JOBS = int(os.environ.get("WORKBENCH_CONFORMANCE_JOBS", "2"))

# graphs from cheapest to dearest: the CI subset runs each test on the first of these it supports
_CHEAP_GRAPHS = [
    "single-linear-step",
    "single-and-branch",
    "small-foreach",
    "simple-foreach",
    "nested-branches",
    "nested-foreach",
    "small-parallel",
    "simple_switch",
    "nested_switch",
    "branch_in_switch",
    "foreach_in_switch",
    "switch_in_branch",
    "switch_in_foreach",
    "recursive_switch",
    "recursive_switch_inside_foreach",
]
# more pairs CI runs because they cover a path the cheapest graph does not
CI_EXTRA = {
    ("MergeArtifactsTest", "nested-branches"),
    ("BasicForeachTest", "small-foreach"),
    ("ResumeForeachJoinTest", "simple-foreach"),
    ("BasicParameterTest", "small-foreach"),
}


def _selected() -> list[tuple]:
    pairs = runner.all_pairs() if MODE not in ("0", "off", "none") else []
    if MODE == "all":
        return pairs
    rank = {g: i for i, g in enumerate(_CHEAP_GRAPHS)}
    best: dict[str, tuple] = {}
    for test, graph in pairs:
        name = type(test).__name__
        current = best.get(name)
        if current is None or rank.get(graph["name"], 99) < rank.get(current[1]["name"], 99):
            best[name] = (test, graph)
    chosen = [p for p in best.values() if type(p[0]).__name__ not in SLOW_WHILE_FAILING]
    chosen += [(t, g) for t, g in pairs if (type(t).__name__, g["name"]) in CI_EXTRA and (t, g) not in chosen]
    return chosen


SELECTED = _selected()


@pytest.fixture(scope="session")
def conformance_results():
    """Run every selected pair once, in parallel processes; the tests below read the results."""
    with ThreadPoolExecutor(max_workers=max(1, JOBS)) as pool:
        results = list(pool.map(lambda pair: runner.run_pair(*pair), SELECTED))
    return {r.key: r for r in results}


def _params():
    for test, graph in SELECTED:
        name, gname = type(test).__name__, graph["name"]
        reason = runner.skip_reason(name, gname)
        marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
        yield pytest.param(f"{name}/{gname}", id=f"{name}-{gname}", marks=marks)


@pytest.mark.timeout(7200)
@pytest.mark.parametrize("pair", list(_params()))
def test_pair(pair, conformance_results):
    result = conformance_results[pair]
    assert result.passed, f"{pair} failed at {result.stage}:\n{result.output[-4000:]}"


def test_every_skip_names_a_counted_pair_and_a_reason():
    """The skip list stays honest: each entry is a real pair of the matrix and says why."""
    counted = {(type(t).__name__, g["name"]) for t, g in runner.all_pairs()}
    counted_tests = {t for t, _ in counted}
    for (test, graph), reason in runner.SKIPPED.items():
        counted_graphs = {g for _, g in counted}
        assert (
            (test, graph) in counted
            or (graph == "*" and test in counted_tests)
            or (test == "*" and graph in counted_graphs)
        ), (test, graph)
        assert len(reason) > 20, (test, graph)
