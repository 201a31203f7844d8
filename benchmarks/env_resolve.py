"""Step environments: cold resolve + install vs pip, the warm per-task cost, and cached image builds.

All in one run, on the same machine and the same package index (uv is pointed at the index pip is
configured with: pip.conf files and PIP_* variables, see workbench.environment_uv.index_arguments):

1. cold: resolve + install numpy, pandas and scikit-learn into a new environment with workbench's path
   (uv pip compile -> pylock, uv venv, uv pip sync; empty workbench cache AND empty uv cache) vs
   `python -m venv` + `pip install --no-cache-dir` of the same three into a fresh venv. Target >= 5x.
   The wheelhouse (wheels kept for offline container/remote installs) is timed on its own.
2. warm: what a task pays once its declared environment exists: planning + the cache check (no uv
   runs), and the interpreter start of the environment's python vs workbench's own (both `-c pass`).
   Target < 20 ms for the check.
3. docker: `workbench image build` of an environment image (the same three packages, installed
   offline from the wheelhouse on workbench-base:bookworm) when nothing changed (up to date), under a
   new tag with the same inputs (tagged from the cache) and a forced `docker build` that hits the
   engine's layer cache for every step. Target < 2 s.

    python benchmarks/env_resolve.py [--repeat 1] [--skip-docker] [--image workbench-base:bookworm]

Prints one line per measure and the ratios; exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PACKAGES = ("numpy", "pandas", "scikit-learn")


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def cold_workbench(tmp: Path) -> tuple[float, float, object]:
    """Cold resolve + install with an empty workbench cache and an empty uv cache."""
    os.environ["WORKBENCH_CACHE_DIR"] = str(tmp / "wb-cache")
    os.environ["UV_CACHE_DIR"] = str(tmp / "uv-cache")
    from workbench.environment_spec import EnvironmentSpec
    from workbench.environment_uv import ensure_installed, ensure_wheelhouse, environment_for

    env = environment_for(EnvironmentSpec(PACKAGES))
    install = _timed(lambda: ensure_installed(env, what="benchmark"))
    wheels = _timed(lambda: ensure_wheelhouse(env, what="benchmark"))
    return install, wheels, env


def cold_pip(tmp: Path) -> float:
    venv = tmp / "pip-venv"

    def run() -> None:
        # ensurepip reads pip.conf too and warns about file:// indexes: keep its noise out of the figures
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, stderr=subprocess.DEVNULL)
        proc = subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--no-cache-dir", "--quiet", *PACKAGES],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            sys.exit(f"pip install failed: {proc.stderr.strip().splitlines()[-1:]}")

    return _timed(run)


def pip_versions(tmp: Path) -> str:
    """What pip installed, to check both sides resolved the same set."""
    out = subprocess.run(
        [
            str(tmp / "pip-venv" / "bin" / "python"),
            "-m",
            "pip",
            "list",
            "--format",
            "freeze",
            "--exclude",
            "pip",
            "--exclude",
            "setuptools",
        ],
        capture_output=True,
        text=True,
    ).stdout
    return ", ".join(ln.replace("==", " ") for ln in sorted(out.split(), key=str.lower))


def warm_overhead(env, repeat: int = 20) -> tuple[float, float, float]:
    """Median ms: plan + cache check of a ready env, its python's start, workbench's python's start."""
    from workbench.environment_plan import StepEnvironment, prepare_environments
    from workbench.environment_spec import EnvironmentSpec
    from workbench.environment_uv import environment_for

    checks = []
    for _ in range(repeat):
        started = time.perf_counter()
        again = environment_for(EnvironmentSpec(PACKAGES))
        prepare_environments([StepEnvironment("fit", again.spec, again, "benchmark")], install=True)
        checks.append((time.perf_counter() - started) * 1000)

    def start(python: str) -> float:
        runs = []
        for _ in range(repeat // 2 or 1):
            started = time.perf_counter()
            subprocess.run([python, "-c", "pass"], check=True)
            runs.append((time.perf_counter() - started) * 1000)
        return statistics.median(runs)

    return statistics.median(checks), start(str(env.python)), start(sys.executable)


def docker_cached(tmp: Path, image: str) -> dict[str, float]:
    """Seconds: first build, up to date, new tag from the cache, forced docker build on layer cache."""
    import docker

    from workbench.cli import main
    from workbench.image import _build_context, template_path  # noqa: F401 - the same context as the CLI

    client = docker.from_env()
    project = tmp / "project"
    project.mkdir()
    (project / "workbench.toml").write_text(
        f'[project]\nname = "envbench"\n\n[docker]\nimage = "{image}"\nnetwork = "none"\n'
    )
    (project / "requirements.txt").write_text("".join(p + "\n" for p in PACKAGES))
    cwd = os.getcwd()
    os.chdir(project)
    tags = [f"wbbench-env:{n}" for n in ("a", "b", "c")]
    out: dict[str, float] = {}
    try:
        import contextlib
        import io

        quiet = io.StringIO()
        with contextlib.redirect_stdout(quiet):
            out["first build"] = _timed(lambda: main(["image", "build", "--tag", tags[0]]))
            out["up to date"] = _timed(lambda: main(["image", "build", "--tag", tags[0]]))
            out["new tag, same inputs"] = _timed(lambda: main(["image", "build", "--tag", tags[1]]))
        # a forced docker build of the same context: every step from the engine's layer cache
        from workbench.environment_spec import merge, project_package_set
        from workbench.environment_uv import environment_for
        from workbench.image import image_target

        base_id = client.images.get(image).id
        env = environment_for(merge(project_package_set(project)), image_target(client, image, base_id))
        digest = client.images.get(tags[0]).labels["workbench.inputs"]

        def forced() -> None:
            with tempfile.TemporaryDirectory() as ctx:
                _build_context(Path(ctx), env)
                for chunk in client.api.build(
                    path=ctx,
                    tag=tags[2],
                    rm=True,
                    pull=False,
                    decode=True,
                    network_mode="none",
                    buildargs={"BASE_IMAGE": image, "WORKBENCH_INPUTS": digest},
                ):
                    if "error" in chunk:
                        raise RuntimeError(chunk["error"])

        out["forced docker build (layer cache)"] = _timed(forced)
    finally:
        os.chdir(cwd)
        for tag in tags:
            try:
                client.images.remove(tag, force=True)
            except Exception:  # noqa: BLE001 - not built
                pass
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-docker", action="store_true")
    parser.add_argument("--image", default=os.environ.get("WORKBENCH_BASE_IMAGE") or "workbench-base:bookworm")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory(prefix="wb-env-bench-") as tmp_name:
        tmp = Path(tmp_name)
        pip_s = cold_pip(tmp)
        wb_s, wheels_s, env = cold_workbench(tmp)
        names = ", ".join(f"{p['name']} {p['version']}" for p in env.packages())
        print(f"workbench resolved: {names}")
        print(f"pip installed:      {pip_versions(tmp)}")
        print(f"cold resolve + install, pip into a fresh venv:      {pip_s:7.2f} s")
        print(
            f"cold resolve + install, workbench (uv, empty cache): {wb_s:7.2f} s   ratio {pip_s / wb_s:.1f}x "
            f"(target >= 5x)"
        )
        print(f"wheelhouse for offline installs (fetched once):      {wheels_s:7.2f} s")
        ok &= pip_s / wb_s >= 5
        check_ms, env_py, host_py = warm_overhead(env)
        print(
            f"warm declared environment: plan + cache check {check_ms:.2f} ms (target < 20 ms); "
            f"python start {env_py:.1f} ms in the env vs {host_py:.1f} ms workbench's own "
            f"({env_py - host_py:+.1f} ms)"
        )
        ok &= check_ms < 20
        if not args.skip_docker:
            for what, secs in docker_cached(tmp, args.image).items():
                target = "" if what == "first build" else "  (target < 2 s)"
                print(f"docker environment image, {what}: {secs:.2f} s{target}")
                ok &= what == "first build" or secs < 2
        shutil.rmtree(tmp / "pip-venv", ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
