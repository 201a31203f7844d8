"""Save-to-redraw latency of the DAG with a real watchdog observer.

The app runs headless (App.run_test) with file watching on, as `workbench tui` does. Each round adds a
step to a flow file on disk and measures the time until the DAG on screen has that step (the debounce
period, watchdog's delivery and the rebuild from the static graph are all inside the figure).
Target: under 300 ms.   Usage: python benchmarks/tui_redraw.py [--rounds 20] [--flows 50]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from tui_startup import make_project  # noqa: E402

EXTRA = """
    @step
    def extra_{k}(self):
        self.next(self.end)
"""


async def measure(root: Path, rounds: int) -> list[float]:
    from workbench.config import load_config
    from workbench.tui.app import create_app

    app = create_app(load_config(root), watch=True)
    target = root / "flows" / "flow_00.py"
    original = target.read_text()
    samples = []
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause(0.3)
        app.select_flow(str(target))
        dag = app.query_one("#dag")
        for k in range(rounds):
            # end -> extra_k -> end: rewrite join's transition to go through a new step
            source = original.replace(
                "self.total = inputs.left.a + inputs.right.b\n        self.next(self.end)",
                f"self.total = inputs.left.a + inputs.right.b\n        self.next(self.extra_{k})",
            )
            source = source.replace(
                "    @step\n    def end(self):", EXTRA.format(k=k).lstrip("\n") + "\n    @step\n    def end(self):"
            )
            started = time.perf_counter()
            target.write_text(source)
            deadline = started + 5
            while f"extra_{k}" not in dag.picture.boxes:
                if time.perf_counter() > deadline:
                    raise SystemExit(f"round {k}: the DAG did not change within 5 s")
                await pilot.pause(0.002)
            samples.append(time.perf_counter() - started)
            await pilot.pause(0.2)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--flows", type=int, default=50)
    args = parser.parse_args()
    root = make_project(args.flows)
    try:
        samples = asyncio.run(measure(root, args.rounds))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ms = sorted(s * 1000 for s in samples)
    print(
        f"save-to-redraw with a real watchdog observer, {args.flows} flows: median {statistics.median(ms):.0f} ms, "
        f"p90 {ms[int(len(ms) * 0.9) - 1]:.0f} ms, max {ms[-1]:.0f} ms over {len(ms)} saves"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
