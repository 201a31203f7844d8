"""Run ``workbench`` commands in-process on generated input and judge what comes out.

The fuzz tests (tests/test_fuzz_*.py) hand every generated flow file and workbench.toml to the real
command-line entry point. In-process keeps a case in milliseconds; an exception escaping
``cli.main`` is exactly a traceback a user would have seen, so it propagates and fails the case.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

DEFAULT_CONFIG = '[project]\nname = "fuzz"\nflows = "flows"\n'


@dataclass
class Outcome:
    code: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        """Lines that report an error: `check` prints ``error <where>: ...``, other commands ``error: ...``."""
        return [ln for ln in (self.out + self.err).splitlines() if ln.startswith("error")]


@contextlib.contextmanager
def project(
    flow: Optional[bytes] = None, config: Optional[bytes] = DEFAULT_CONFIG.encode(), flow_name: str = "fuzzed.py"
) -> Iterator[Path]:
    """A throw-away project directory with cwd inside it: workbench.toml and flows/<flow_name>."""
    old_cwd = os.getcwd()
    saved = {k: os.environ.pop(k, None) for k in ("WORKBENCH_CONFIG", "WORKBENCH_DATASTORE")}
    with tempfile.TemporaryDirectory(prefix="wb-fuzz-") as tmp:
        root = Path(tmp)
        (root / "flows").mkdir()
        if config is not None:
            (root / "workbench.toml").write_bytes(config)
        if flow is not None:
            (root / "flows" / flow_name).write_bytes(flow)
        os.chdir(root)
        try:
            yield root
        finally:
            os.chdir(old_cwd)
            for k, v in saved.items():
                if v is not None:
                    os.environ[k] = v


def run_cli(*argv: str) -> Outcome:
    """``workbench ARGV`` in this process; exceptions other than SystemExit propagate (= a traceback)."""
    from workbench import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    return Outcome(code, out.getvalue(), err.getvalue())


_WHERE = re.compile(r"(\.py|\.toml)(:\d+)?:|=|\bstep \w|\bflow \w|--\w")


def assert_user_facing(outcome: Outcome, *names: str) -> None:
    """Exit 0/1/2, no traceback, and each error is one line that names a file (with line) or the value."""
    text = outcome.out + outcome.err
    assert outcome.code in (0, 1, 2), (outcome.code, text)
    assert "Traceback" not in text, text
    for line in outcome.error_lines:
        assert any(n in line for n in names) or _WHERE.search(line), f"error names nothing: {line!r}"
    if outcome.code != 0 and not text.startswith("no flow files in "):  # `check` of an empty project
        assert outcome.error_lines, f"exit {outcome.code} without an error line: {text!r}"
