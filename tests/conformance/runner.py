"""Run Metaflow's core test suite (vendored under tests/conformance/) against workbench.

Each (graph, test) pair becomes a flow the way Metaflow's formatter writes it, with its ``metaflow``
imports swapped for ``workbench``; it runs the way Metaflow's run_tests.py runs it in its default local
context (``python test_flow.py run``, then ``resume`` for resume tests; a test that must fail must
fail), and the test's ``check_results`` runs against both checkers of conformance_checker.py.

    python tests/conformance/runner.py                 # every counted pair, prints pass/fail/skip
    python tests/conformance/runner.py --tests BasicArtifactTest --graphs simple-foreach -v
    python tests/conformance/runner.py -j 4 --json counts.json --ignore-skips
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterator, Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from metaflow_test import MetaflowTest  # noqa: E402  (vendored; needs HERE on sys.path)
from metaflow_test.formatter import FlowFormatter  # noqa: E402
from skips import NOT_COUNTED, SKIPPED  # noqa: E402

# Metaflow's default local context (test/core/contexts.json, "python3-all-local")
CONTEXT_ENV = {
    "METAFLOW_USER": "tester",
    "METAFLOW_RUN_BOOL_PARAM": "False",
    "METAFLOW_RUN_NO_DEFAULT_PARAM": "test_str",
    "METAFLOW_DEFAULT_METADATA": "local",
}
TOP_OPTIONS = [
    "--metadata=local",
    "--datastore=local",
    "--environment=local",
    "--event-logger=nullSidecarLogger",
    "--no-pylint",
    "--quiet",
]
RUN_OPTIONS = [
    "--max-workers=50",
    "--max-num-splits=10000",
    "--tag=\u523a\u8eab means sashimi",
    "--tag=multiple tags should be ok",
]
DISABLED_TESTS = {"LargeArtifactTest", "S3FailureTest", "CardComponentRefreshTest", "CardWithRefreshTest"}
CHECKS = ["MetadataCheck", "CliCheck"]
PAIR_TIMEOUT = 300


@dataclasses.dataclass
class PairResult:
    test: str
    graph: str
    passed: bool
    stage: str  # where it stopped: "run", "resume", "should-fail", a checker name, or "ok"
    seconds: float
    output: str = ""

    @property
    def key(self) -> str:
        return f"{self.test}/{self.graph}"


def iter_graphs() -> Iterator[dict]:
    for path in sorted((HERE / "graphs").glob("*.json")):
        yield json.loads(path.read_text())


def iter_tests() -> Iterator[MetaflowTest]:
    """Every MetaflowTest subclass in the vendored tests/ directory (as run_tests.py finds them)."""
    for path in sorted((HERE / "tests").glob("*.py")):
        name = f"conformance_case_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        # a few definitions import `metaflow` at the top (catch_retry, tag_catch): load them with the same
        # import swap as the flows, so the suite never needs Metaflow itself installed
        code = compile(swap_imports(path.read_text(encoding="utf-8")), str(path), "exec")
        exec(code, mod.__dict__)  # noqa: S102 - the vendored test definitions, as run_tests.py imports them
        for attr in dir(mod):
            obj = getattr(mod, attr)
            if (
                attr != "MetaflowTest"
                and isinstance(obj, type)
                and issubclass(obj, MetaflowTest)
                and obj.__module__ == name
            ):
                yield obj()


def all_pairs() -> list[tuple[MetaflowTest, dict]]:
    """The valid (test, graph) pairs of the default local context that the suite counts."""
    graphs = list(iter_graphs())
    pairs = []
    for test in sorted(iter_tests(), key=lambda t: (t.PRIORITY, type(t).__name__)):
        name = type(test).__name__
        if name in DISABLED_TESTS or name in NOT_COUNTED:
            continue
        for graph in graphs:
            if FlowFormatter(graph, test).valid:
                pairs.append((test, graph))
    return pairs


_IMPORT_SWAP = re.compile(r"\b(from|import)(\s+)metaflow(?=[\s.])")


def swap_imports(code: str) -> str:
    """`from metaflow import X` / `import metaflow.y` -> workbench; metaflow_test stays."""
    return _IMPORT_SWAP.sub(r"\1\2workbench", code)


def _env(workdir: str) -> dict[str, str]:
    pythonpath = os.pathsep.join(
        [str(HERE), str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    )
    env = {
        "USER": os.environ.get("USER", "tester"),
        "HOME": os.environ.get("HOME", workdir),
        "PATH": os.environ.get("PATH", "."),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf_8",
        "PYTHONPATH": pythonpath,
    }
    env.update(CONTEXT_ENV)
    return env


def _proc(cmd: list[str], cwd: str, env: dict, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        return subprocess.CompletedProcess(cmd, -9, exc.stdout or b"", (exc.stderr or b"") + b"\n[timed out]")


def _flow_cmd(mode: str, args: Optional[list[str]] = None) -> list[str]:
    """The command line run_tests.py builds: top options, the mode, its args, --run-id-file, run options."""
    return [
        sys.executable,
        "-B",
        "test_flow.py",
        *TOP_OPTIONS,
        mode,
        *(args or []),
        "--run-id-file",
        "run-id",
        *RUN_OPTIONS,
    ]


def run_pair(test: MetaflowTest, graph: dict, keep: bool = False) -> PairResult:
    """Generate, run (and resume) one pair's flow in a fresh directory, then run its checks."""
    formatter = FlowFormatter(graph, test)
    name, gname = type(test).__name__, graph["name"]
    workdir = tempfile.mkdtemp(prefix="wb_conformance_")
    started = time.time()
    log: list[str] = []

    def result(passed: bool, stage: str) -> PairResult:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log.append(f"[kept {workdir}]")
        return PairResult(name, gname, passed, stage, time.time() - started, "\n".join(log))

    def record(proc: subprocess.CompletedProcess, what: str) -> None:
        log.append(
            f"--- {what}: exit {proc.returncode}\n{proc.stdout.decode(errors='replace')}"
            f"{proc.stderr.decode(errors='replace')}"
        )

    try:
        Path(workdir, "test_flow.py").write_text(swap_imports(formatter.flow_code), encoding="utf-8")
        Path(workdir, "check_flow.py").write_text(swap_imports(formatter.check_code), encoding="utf-8")
        for extra in formatter.copy_files:
            shutil.copy2(HERE / "tests" / extra, Path(workdir, extra))
        env = _env(workdir)
        proc = _proc(_flow_cmd("run"), workdir, env, PAIR_TIMEOUT)
        record(proc, "run")
        if proc.returncode:
            if formatter.should_fail:
                pass
            elif formatter.should_resume:
                args = [formatter.resume_step] if formatter.resume_step else []
                proc = _proc(_flow_cmd("resume", args), workdir, env, PAIR_TIMEOUT)
                record(proc, "resume")
                if proc.returncode:
                    return result(False, "resume")
            else:
                return result(False, "run")
        elif formatter.should_fail:
            log.append("--- the flow should have failed but it did not")
            return result(False, "should-fail")
        run_id_file = Path(workdir, "run-id")
        if not run_id_file.exists():
            log.append("--- no run-id file was written")
            return result(False, "run-id-file")
        run_id = run_id_file.read_text().strip()
        for check in CHECKS:
            proc = _proc([sys.executable, "check_flow.py", check, run_id, *TOP_OPTIONS], workdir, env, PAIR_TIMEOUT)
            record(proc, check)
            if proc.returncode:
                return result(False, check)
        return result(True, "ok")
    except Exception as exc:  # noqa: BLE001 - a harness error is this pair's failure, not the suite's
        log.append(f"--- harness error: {exc!r}")
        return result(False, "harness")


def skip_reason(test: str, graph: str) -> Optional[str]:
    return SKIPPED.get((test, graph)) or SKIPPED.get((test, "*")) or SKIPPED.get(("*", graph))


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tests", default="", help="comma-separated test class names")
    ap.add_argument("--graphs", default="", help="comma-separated graph names")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="pairs run at once")
    ap.add_argument("--ignore-skips", action="store_true", help="also run the pairs listed in skips.py")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--keep", action="store_true", help="keep each pair's directory")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the output of failed pairs")
    args = ap.parse_args(argv)
    want_tests = {t for t in args.tests.split(",") if t}
    want_graphs = {g for g in args.graphs.split(",") if g}
    pairs = [
        (t, g)
        for t, g in all_pairs()
        if (not want_tests or type(t).__name__ in want_tests) and (not want_graphs or g["name"] in want_graphs)
    ]
    skipped = [] if args.ignore_skips else [(t, g) for t, g in pairs if skip_reason(type(t).__name__, g["name"])]
    to_run = [p for p in pairs if p not in skipped]
    started = time.time()
    results: list[PairResult] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for res in pool.map(lambda p: run_pair(*p, keep=args.keep), to_run):
            results.append(res)
            print(f"{'PASS' if res.passed else 'FAIL':4} {res.key} ({res.stage}, {res.seconds:.1f}s)", flush=True)
            if args.verbose and not res.passed:
                print(res.output[-6000:])
    passed = sum(r.passed for r in results)
    print(
        f"\n{len(pairs)} pairs: {passed} passed, {len(results) - passed} failed, {len(skipped)} skipped "
        f"({time.time() - started:.0f}s)"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "pairs": len(pairs),
                    "passed": passed,
                    "failed": len(results) - passed,
                    "skipped": len(skipped),
                    "results": [
                        {"pair": r.key, "passed": r.passed, "stage": r.stage, "seconds": round(r.seconds, 1)}
                        for r in results
                    ],
                },
                indent=1,
            )
        )
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
