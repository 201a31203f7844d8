"""Property-based fuzzing of workbench.toml: `workbench check`, `show` and the config loader never show a
traceback, whatever the file holds.

Inputs are generated documents (known and unknown keys at every level, values of every TOML type:
inf, nan, huge integers, dates, deep nesting, strings such as "/" and "16Q") and mutations of the
repository's own workbench.toml (deleted lines, replaced values, bytes that are not UTF-8, a BOM).
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import tomlkit
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workbench.config import ConfigModel, StepSection, load_config
from workbench.errors import WorkbenchError

from .support.fuzz_cli import assert_user_facing, project, run_cli

REPO = Path(__file__).resolve().parents[1]
SEED = (REPO / "workbench.toml").read_text(encoding="utf-8")
HELLO = (REPO / "flows" / "hello.py").read_bytes()
EXAMPLES = int(os.environ.get("WORKBENCH_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
)

SECTION_KEYS = {
    name: list(field.annotation.model_fields)
    for name, field in ConfigModel.model_fields.items()
    if hasattr(field.annotation, "model_fields")
}
STEP_KEYS = list(StepSection.model_fields)
ODD_STRINGS = [
    "/",
    "",
    ".",
    "..",
    "../..",
    "s3://",
    "s3://b/p",
    "16G",
    "16Q",
    "-1",
    "1e999",
    "inf",
    "nan",
    "2h",
    "x" * 300,
    "\x00",
    "é",
    "local",
    "docker",
    "batch",
    "kubernetes",
    "flows",
    "~",
    "C:\\\\x",
]
RAW = ["inf", "nan", "1e999", "-0", '"/"', "[[]]", "{}", "1979-05-27", "99999999999999999999", '"\\u0000"']
values = st.recursive(
    st.one_of(
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.sampled_from([0, 1, -1, 2**63 - 1]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
        st.sampled_from(ODD_STRINGS),
        st.text(max_size=10),
        st.dates(),
        st.datetimes(timezones=st.just(datetime.timezone.utc)),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(STEP_KEYS + ["x", "A"]), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def step_table(draw) -> dict:
    keys = st.one_of(st.sampled_from(STEP_KEYS), st.sampled_from(STEP_KEYS), st.sampled_from(["cpus", "mem", "x"]))
    good = {
        "cpu": st.sampled_from([1, 2.5, "500m", "4"]),
        "memory": st.sampled_from([4096, "16G", "512Mi"]),
        "gpu": st.sampled_from([0, 1, "2"]),
        "backend": st.sampled_from(["local", "docker", "batch"]),
    }
    table = {}
    for key in draw(st.lists(keys, max_size=4, unique=True)):
        table[key] = draw(st.one_of(good.get(key, values), values))
    return table


@st.composite
def config_document(draw) -> dict:
    """A workbench.toml as data: known sections mostly, with wrong types and unknown keys mixed in."""
    doc: dict = {}
    for section in draw(st.lists(st.sampled_from(list(SECTION_KEYS) + ["flows", "nosuch"]), max_size=4, unique=True)):
        if section == "flows":
            flow = draw(st.sampled_from(["HelloFlow", "HeloFlow", "TrainFlow", "x"]))
            steps = draw(
                st.dictionaries(
                    st.sampled_from(["start", "count", "end", "cout", "train", "x"]), step_table(), max_size=3
                )
            )
            doc["flows"] = {flow: {"steps": steps}} if draw(st.integers(0, 5)) else {flow: draw(values)}
            continue
        keys = SECTION_KEYS.get(section, ["a", "b"]) + ["unknown_key"]
        doc[section] = {k: draw(values) for k in draw(st.lists(st.sampled_from(keys), max_size=4, unique=True))}
        if draw(st.integers(0, 9)) == 0:
            doc[section] = draw(values)  # a section that is not a table
    return doc


def _dump(doc: dict) -> bytes:
    try:
        return tomlkit.dumps(doc).encode("utf-8", "surrogatepass")
    except Exception:  # noqa: BLE001 - a value tomlkit cannot write: fall back to a tiny file
        return b"[project]\nflows = 1\n"


def deep_nesting(kind: str, depth: int) -> bytes:
    return {
        "arrays": f"[project]\nname = {'[' * depth}{']' * depth}\n",
        "tables": "x = " + "{a = " * depth + "1" + "}" * depth + "\n",
        "dotted": "[" + ".".join(["a"] * depth) + "]\nb = 1\n",
        "step": "[flows.HelloFlow.steps.start]\nenv = " + "{a = " * depth + "'1'" + "}" * depth + "\n",
    }[kind].encode()


@st.composite
def mutated_seed(draw) -> bytes:
    lines = SEED.splitlines()
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        kind = draw(st.sampled_from(["value", "value", "delete", "uncomment", "junk"]))
        if kind == "value" and "=" in lines[i]:
            key = lines[i].split("=", 1)[0]
            raw = tomlkit.item(draw(values)).as_string() if draw(st.booleans()) else draw(st.sampled_from(RAW))
            lines[i] = f"{key}= {raw}"
        elif kind == "delete":
            del lines[i]
        elif kind == "uncomment":
            lines[i] = lines[i].lstrip("# ")
        else:
            lines[i] += draw(st.sampled_from(["\x00", "]", "[", "\\", '"', " = 1", "é"]))
    data = ("\n".join(lines) + "\n").encode()
    junk = draw(st.sampled_from([None, None, None, b"\xff", b"\xc3\x28", b"\xef\xbb\xbf"]))
    if junk is not None:
        at = draw(st.integers(0, len(data))) if junk != b"\xef\xbb\xbf" else 0
        data = data[:at] + junk + data[at:]
    return data


config_files = st.one_of(
    config_document().map(_dump),
    mutated_seed(),
    st.builds(
        deep_nesting, st.sampled_from(["arrays", "tables", "dotted", "step"]), st.sampled_from([10, 100, 1000, 10000])
    ),
    st.binary(max_size=100),
)


def _check_config(data: bytes) -> None:
    with project(flow=HELLO, config=data, flow_name="hello.py") as root:
        try:
            load_config(root)
        except WorkbenchError as exc:
            assert "workbench.toml" in str(exc), str(exc)
        checked = run_cli("check")
        assert_user_facing(checked, "workbench.toml", "hello.py")
        assert all(ln.startswith(("error ", "ok ", "no flow files")) for ln in checked.out.splitlines()), checked.out
        shown = run_cli("show", "flows/hello.py")
        assert_user_facing(shown, "workbench.toml", "hello.py")
        if shown.code:
            assert len(shown.err.splitlines()) == 1, shown.err


@FUZZ
@given(config_files)
def test_fuzzed_workbench_toml_never_shows_a_traceback(data):
    _check_config(data)


def test_known_config_crashers_are_one_line_errors():
    cases = [
        b'[project]\nflows = "/"\n',
        b"[flows.HelloFlow.steps.start]\ngpu = inf\n",
        b"[flows.HelloFlow.steps.start]\nmemory = 1e999\n",
        b"[flows.HelloFlow.steps.start]\ntimeout = nan\n",
        b'[project]\nname = "\xff"\n',
        b'\xef\xbb\xbf[project]\nname = "bom"\n',
        b"[flows.HelloFlow.steps.start]\ncpu = 99999999999999999999\n",
        b'[project]\nflows = "\\u0000"\n',
        deep_nesting("arrays", 10000),
        deep_nesting("tables", 10000),
        deep_nesting("step", 1000),
    ]
    for data in cases:
        _check_config(data)


def test_misspelled_step_and_flow_tables_are_errors_naming_the_nearest_match():
    config = b'[project]\nname = "t"\n\n[flows.HelloFlow.steps.cout]\ncpu = 2\n'
    with project(flow=HELLO, config=config, flow_name="hello.py") as root:
        expected = (
            f"{root / 'workbench.toml'}:4: [flows.HelloFlow.steps.cout]: flow HelloFlow has no step cout "
            f"(did you mean count?)"
        )
        checked = run_cli("check")
        assert checked.code == 1 and f"error {expected}" in checked.out.splitlines(), checked
        shown = run_cli("show", "flows/hello.py")
        assert (shown.code, shown.err) == (2, f"error: {expected}\n")
    config = b'[project]\nname = "t"\n\n[flows.HeloFlow.steps.start]\ncpu = 2\n'
    with project(flow=HELLO, config=config, flow_name="hello.py") as root:
        checked = run_cli("check")
        assert checked.code == 1, checked
        assert (
            f"error {root / 'workbench.toml'}:4: [flows.HeloFlow]: no flow named HeloFlow in "
            f"{root / 'flows'} (did you mean HelloFlow?)"
        ) in checked.out.splitlines()
        assert run_cli("show", "flows/hello.py").code == 0  # the table is for no flow of this file
    correct = b'[project]\nname = "t"\n\n[flows.HelloFlow.steps.count]\ncpu = 2\n'
    with project(flow=HELLO, config=correct, flow_name="hello.py"):
        assert run_cli("check").code == 0
        assert "cpu=2" in run_cli("show", "flows/hello.py").out
