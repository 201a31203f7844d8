"""Config / config_expr (Metaflow's user configs) and Parameter(separator=...): what a flow author sees.

The values, the read-only ConfigValue and the static binding are checked in-process; the command lines
(``workbench run ... --config``, ``python flow.py --config-value ... run``, resume) run for real in
subprocesses on the local backend, and their errors must be one line without a traceback.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest

from workbench import Config, ConfigValue, config_expr
from workbench.config import load_config
from workbench.config_values import (
    ConfigOptions,
    bind_configs,
    config_options_from_environment,
    load_flow_class,
    resolve_config_values,
)
from workbench.errors import FlowError, UsageError
from workbench.graph import build_graph, load_graph
from workbench.parameters import resolve_parameters

from .conftest import write_flow

FLOW = """
import os
from workbench import Config, FlowSpec, Parameter, config_expr, environment, step


def words_parser(text):
    return {"words": text.split()}


class CfgFlow(FlowSpec):
    cfg = Config("cfg", default_value={"lr": 0.5, "model": {"name": "tiny"}})
    words = Config("words", default="words.txt", parser=words_parser)
    env = Config("env", default_value='{"vars": {"GREETING": "hi"}}')
    steps = Parameter("steps", default=config_expr("cfg.model.get('steps', 3)"), type=int)
    labels = Parameter("labels", default="a,b", separator=",")

    @environment(vars={"MODEL": cfg.model.name, "LR": config_expr("str(cfg.lr * 2)")})
    @step
    def start(self):
        self.seen = [self.cfg.lr, self.cfg["model"]["name"], os.environ["MODEL"], os.environ["LR"],
                     list(self.words.words), self.steps, self.labels]
        try:
            self.cfg.lr = 1
        except TypeError:
            self.immutable = True
        if os.path.exists("fail-once"):
            os.remove("fail-once")
            raise RuntimeError("failing once, as asked")
        self.next(self.end)

    @environment(**env)
    @step
    def end(self):
        self.greeting = os.environ["GREETING"]


if __name__ == "__main__":
    CfgFlow()
"""


@pytest.fixture
def cfg_project(project):
    write_flow(project, "cfg.py", FLOW)
    (project / "words.txt").write_text("alpha beta\n")
    for var in ("METAFLOW_FLOW_CONFIG", "METAFLOW_FLOW_CONFIG_VALUE", "WORKBENCH_FLOW_CONFIG"):
        os.environ.pop(var, None)
    return project


def _cli(project, *args, env=None, flow_cli=False):
    head = [sys.executable, "flows/cfg.py"] if flow_cli else [sys.executable, "-m", "workbench.cli"]
    return subprocess.run(
        [*head, *args],
        capture_output=True,
        text=True,
        cwd=project,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def _latest(step: str):
    from workbench.client import Flow, namespace

    namespace(load_config().datastore_url)
    return Flow("CfgFlow").latest_run[step].task.data


# ------------------------------------------------------------------------------------ in-process
def test_config_value_reads_like_a_dict_and_an_object_and_cannot_change():
    value = ConfigValue({"a": 1, "nested": {"b": [1, {"c": 2}]}})
    assert value.a == 1 and value["nested"].b[1].c == 2 and value.nested["b"][1]["c"] == 2
    assert value == {"a": 1, "nested": {"b": [1, {"c": 2}]}} and json.loads(json.dumps(value)) == value
    for change in (lambda: value.__setitem__("a", 2), lambda: setattr(value, "a", 2), lambda: value.nested.pop("b")):
        with pytest.raises(TypeError):
            change()
    again = pickle.loads(pickle.dumps(value))
    assert isinstance(again, ConfigValue) and again.nested.b[1].c == 2
    with pytest.raises(AttributeError, match="no key 'zzz'"):
        _ = value.zzz


def test_config_expressions_wait_for_the_values():
    cfg = Config("cfg")
    assert cfg.model.name.evaluate({"cfg": {"model": {"name": "m"}}}) == "m"
    assert config_expr("cfg.n + 1").evaluate({"cfg": {"n": 41}}) == 42
    assert config_expr("cfg")["a"].evaluate({"cfg": {"a": [1]}}) == [1]
    unpacked = dict(**cfg)
    assert len(unpacked) == 1 and next(iter(unpacked.values())).evaluate({"cfg": {"x": 1}}) == {"x": 1}


def test_the_static_graph_knows_configs_and_separators(project):
    path = write_flow(project, "cfg.py", FLOW)
    graph = load_graph(path)
    assert [(c.attr, c.name) for c in graph.configs] == [("cfg", "cfg"), ("words", "words"), ("env", "env")]
    labels = next(p for p in graph.parameters if p.name == "labels")
    assert labels.separator == "," and resolve_parameters([labels], {}) == {"labels": ["a", "b"]}
    assert resolve_parameters([labels], {"labels": "x,y,z"}) == {"labels": ["x", "y", "z"]}
    bad = write_flow(
        project,
        "bad.py",
        """
        from workbench import FlowSpec, Parameter, step
        class B(FlowSpec):
            n = Parameter("n", default=1, separator=",")
            @step
            def start(self):
                self.next(self.end)
            @step
            def end(self):
                pass
        """,
    )
    assert [str(e) for e in build_graph(bad).errors] == [
        f"{bad}:3: parameter n: separator= works with string parameters only"
    ]


def test_values_from_defaults_files_values_and_parsers(cfg_project):
    graph = load_graph(cfg_project / "flows" / "cfg.py")
    flow_cls = load_flow_class(graph)
    values = resolve_config_values(graph, flow_cls, ConfigOptions())
    assert values == {
        "cfg": {"lr": 0.5, "model": {"name": "tiny"}},
        "words": {"words": ["alpha", "beta"]},
        "env": {"vars": {"GREETING": "hi"}},
    }
    (cfg_project / "other.json").write_text('{"lr": 2, "model": {"name": "big", "steps": 9}}')
    values = resolve_config_values(
        graph, flow_cls, ConfigOptions(files=[("cfg", "other.json")], values=[("words", "one two three")])
    )
    assert values["cfg"]["model"]["steps"] == 9 and values["words"] == {"words": ["one", "two", "three"]}
    bind_configs(graph, flow_cls, values)
    start = graph.steps["start"].decorators[0]
    assert start.kwargs == {"vars": {"MODEL": "big", "LR": "4"}}
    assert graph.steps["end"].decorators[0].kwargs == {"vars": {"GREETING": "hi"}}
    assert next(p for p in graph.parameters if p.name == "steps").default == 9


@pytest.mark.parametrize(
    "options,message",
    [
        (
            ConfigOptions(values=[("nope", "{}")]),
            "--config-value nope: flow CfgFlow has no config nope (its configs: cfg, words, env)",
        ),
        (
            ConfigOptions(files=[("cfg", "missing.json")]),
            "--config cfg: cannot read missing.json: No such file or directory",
        ),
        (
            ConfigOptions(values=[("cfg", "{not json")]),
            "config cfg: --config-value cfg is not valid JSON: Expecting property name enclosed in double quotes (line 1)",
        ),
        (ConfigOptions(values=[("cfg", "[1, 2]")]), "config cfg: --config-value cfg must hold a JSON object, not list"),
        (
            ConfigOptions(files=[("cfg", "words.txt")], values=[("cfg", "{}")]),
            "config cfg is given twice (--config and --config-value take one each)",
        ),
    ],
)
def test_bad_config_input_is_one_line(cfg_project, options, message):
    graph = load_graph(cfg_project / "flows" / "cfg.py")
    with pytest.raises(UsageError) as info:
        resolve_config_values(graph, load_flow_class(graph), options)
    assert str(info.value) == message


def test_a_config_with_both_defaults_is_a_flow_error(project):
    path = write_flow(
        project,
        "both.py",
        """
        from workbench import Config, FlowSpec, step
        class B(FlowSpec):
            cfg = Config("cfg", default="a.json", default_value={"a": 1})
            @step
            def start(self):
                self.next(self.end)
            @step
            def end(self):
                pass
        """,
    )
    assert [str(e) for e in build_graph(path).errors] == [
        f"{path}:3: config cfg: give default= (a file) or default_value= (a value), not both"
    ]


def test_missing_default_file_and_required_config(cfg_project):
    graph = load_graph(cfg_project / "flows" / "cfg.py")
    flow_cls = load_flow_class(graph)
    (cfg_project / "words.txt").unlink()
    with pytest.raises(UsageError, match="^config words: default file: cannot read words.txt: No such file"):
        resolve_config_values(graph, flow_cls, ConfigOptions())
    write_flow(
        cfg_project,
        "req.py",
        """
        from workbench import Config, FlowSpec, step
        class R(FlowSpec):
            must = Config("must", required=True)
            @step
            def start(self):
                self.next(self.end)
            @step
            def end(self):
                pass
        """,
    )
    graph = load_graph(cfg_project / "flows" / "req.py")
    with pytest.raises(UsageError) as info:
        resolve_config_values(graph, load_flow_class(graph), ConfigOptions())
    assert str(info.value) == "config must is required: give --config must FILE or --config-value must VALUE"


def test_a_bad_config_expression_names_its_line(cfg_project):
    path = write_flow(
        cfg_project,
        "expr.py",
        """
        from workbench import Config, FlowSpec, environment, step
        class E(FlowSpec):
            cfg = Config("cfg", default_value={"a": 1})
            @environment(vars={"X": cfg.nope})
            @step
            def start(self):
                self.next(self.end)
            @step
            def end(self):
                pass
        """,
    )
    graph = load_graph(path)
    flow_cls = load_flow_class(graph)
    with pytest.raises(FlowError) as info:
        bind_configs(graph, flow_cls, resolve_config_values(graph, flow_cls, ConfigOptions()))
    assert str(info.value).startswith(f"{path}:4: step start: @environment(vars=...): {{'X': cfg.nope}} could not be")
    assert "no key 'nope'" in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------------------------- command lines
def test_workbench_run_with_config_options_then_resume_keeps_them(cfg_project):
    (cfg_project / "big.json").write_text('{"lr": 1.5, "model": {"name": "big", "steps": 7}}')
    (cfg_project / "fail-once").write_text("")
    p = _cli(cfg_project, "run", "flows/cfg.py", "--config", "cfg", "big.json")
    assert p.returncode == 1 and "failing once, as asked" in p.stdout + p.stderr, p.stderr
    # the resume sees other options in the environment, and keeps the first run's values anyway
    p = _cli(cfg_project, "resume", "flows/cfg.py", env={"METAFLOW_FLOW_CONFIG_VALUE": json.dumps({"cfg": {"lr": 9}})})
    assert p.returncode == 0, p.stdout + p.stderr
    start = _latest("start")
    assert start.seen == [1.5, "big", "big", "3.0", ["alpha", "beta"], 7, ["a", "b"]]
    assert start.cfg == {"lr": 1.5, "model": {"name": "big", "steps": 7}} and start.immutable
    assert _latest("end").greeting == "hi"
    # one step again, with the inputs (and the configs) of that run; --config is refused there
    p = _cli(cfg_project, "run", "flows/cfg.py", "--step", "end", "--config-value", "cfg", "{}")
    assert p.returncode == 2 and "the run keeps its origin run's configs" in p.stderr, p.stderr
    p = _cli(cfg_project, "run", "flows/cfg.py", "--step", "end")
    assert p.returncode == 0, p.stdout + p.stderr
    assert _latest("end").cfg == {"lr": 1.5, "model": {"name": "big", "steps": 7}}


def test_the_flows_own_command_line_takes_metaflows_config_options(cfg_project):
    (cfg_project / "other.txt").write_text("from a file")
    p = _cli(
        cfg_project,
        "--config-value",
        "cfg",
        '{"lr": 0.25, "model": {"name": "m"}}',
        "run",
        "--labels",
        "p,q",
        flow_cli=True,
        env={"METAFLOW_FLOW_CONFIG": json.dumps({"words": "other.txt"})},  # files from the environment
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert _latest("start").seen == [0.25, "m", "m", "0.5", ["from", "a", "file"], 3, ["p", "q"]]


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["run", "flows/cfg.py", "--config", "nope", "x.json"],
            "error: --config nope: flow CfgFlow has no config nope",
        ),
        (
            ["run", "flows/cfg.py", "--config", "cfg", "words.txt"],
            "error: config cfg: file words.txt is not valid JSON",
        ),
        (["run", "flows/cfg.py", "--config-value", "cfg"], "error: --config-value takes two values"),
    ],
)
def test_config_usage_errors_exit_2_with_one_line(cfg_project, args, message):
    p = _cli(cfg_project, *args)
    assert p.returncode == 2, p.stdout + p.stderr
    assert p.stderr.strip().startswith(message) and len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert "Traceback" not in p.stderr


def test_check_passes_and_a_runtime_without_the_configs_says_so(cfg_project):
    p = _cli(cfg_project, "check", "flows/cfg.py")
    assert p.returncode == 0 and "ok    flows/cfg.py: CfgFlow (2 steps)" in p.stdout, p.stdout + p.stderr
    from workbench.runtime import Runtime

    with pytest.raises(UsageError, match=r"^flow CfgFlow has configs \(cfg, words, env\): start it with workbench run"):
        Runtime(load_graph(cfg_project / "flows" / "cfg.py"), load_config())


def test_any_config_text_is_a_value_or_one_line(cfg_project):
    """Whatever text --config-value or METAFLOW_FLOW_CONFIG_VALUE carries: a value, or one clear line."""
    from hypothesis import HealthCheck, assume, given, settings
    from hypothesis import strategies as st

    graph = load_graph(cfg_project / "flows" / "cfg.py")
    flow_cls = load_flow_class(graph)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(
        text=st.one_of(st.text(max_size=40), st.from_regex(r'\{"[a-z]{0,3}": ?[\[\]{}0-9",]{0,8}\}?')),
        env=st.booleans(),
    )
    def check(text, env):
        os.environ.pop("METAFLOW_FLOW_CONFIG_VALUE", None)
        options = ConfigOptions(values=[("cfg", text)])
        if env:
            # an environment variable cannot carry NUL or unencodable text: no user can set one
            assume("\x00" not in text and _encodable(text))
            os.environ["METAFLOW_FLOW_CONFIG_VALUE"] = text
            options = ConfigOptions()
        try:
            values = resolve_config_values(graph, flow_cls, config_options_from_environment(options))
        except UsageError as exc:
            assert "\n" not in str(exc) and str(exc)
        else:
            assert isinstance(values["cfg"], dict) and json.loads(json.dumps(values))
        finally:
            os.environ.pop("METAFLOW_FLOW_CONFIG_VALUE", None)

    check()


def _encodable(text: str) -> bool:
    try:
        os.fsencode(text)
    except UnicodeError:
        return False
    return True


def test_runner_passes_configs_as_metaflow_does(cfg_project):
    """``Runner(..., config_value=[(NAME, dict)])`` is ``--config-value NAME JSON`` on the flow's command line."""
    from workbench import Runner

    runner = Runner(
        "flows/cfg.py",
        show_output=False,
        cwd=str(cfg_project),
        config_value=[("cfg", {"lr": 2.0, "model": {"name": "big"}})],
    )
    result = runner.run()
    assert result.returncode == 0, result.stderr
    seen = result.run["start"].task.data.seen
    assert seen[0] == 2.0 and seen[1] == "big" and seen[2] == "big"
