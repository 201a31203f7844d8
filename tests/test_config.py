"""workbench.toml: discovery, validation errors with key and line, effective settings, comment-keeping edits."""

import pytest

from workbench.config import edit_step, find_config, load_config, parse_config_text
from workbench.errors import ConfigError, FlowError, UsageError
from workbench.graph import load_graph
from workbench.settings import effective_settings

from .conftest import write_flow

COMMENTED = """\
# top comment: keep me
[project]
name = "demo"   # inline comment
flows = "flows"

# datastore comment
[datastore]
root = ".workbench"

[flows.TrainFlow.steps.other]
# a comment inside a step table
cpu = 2
"""

FLOW = """
from workbench import FlowSpec, step, resources, batch, timeout, retry, environment

class TrainFlow(FlowSpec):
    @resources(cpu=2, memory=8000, gpu=1)
    @timeout(minutes=5)
    @retry(times=2, minutes_between_retries=0)
    @environment(vars={"A": "1"})
    @step
    def start(self):
        self.next(self.train)

    @batch(cpu=4, memory=4000, queue="gpu-queue")
    @step
    def train(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_found_by_walking_up(tmp_path, monkeypatch):
    (tmp_path / "workbench.toml").write_text('[project]\nname = "x"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert find_config() == tmp_path / "workbench.toml"
    cfg = load_config()
    assert cfg.root == tmp_path and cfg.model.project.name == "x"
    assert cfg.datastore_url == str(tmp_path / ".workbench")


@pytest.mark.parametrize(
    "text,message,line",
    [
        ('[project]\nname = "x"\nbogus = 1\n', "unknown key project.bogus", 3),
        ('[project]\nbackend = "cloud"\n', "project.backend", 2),
        ('[flows.F.steps.s]\nmemory = "16Q"\n', "flows.F.steps.s.memory: memory = '16Q' is not a size", 2),
        ("[flows.F.steps.s]\ngpu = 1.5\n", "must be a whole number of GPUs", 2),
        ("[flows.F.steps.s]\ncpu = -1\n", "must be greater than zero", 2),
        ('[project]\nname = "x"\n[docker\nimage = 1\n', "not valid TOML", 3),
        ("[kubernetes]\nnamespace = 3\n", "kubernetes.namespace", 2),
        ('[batch]\nregion = "x"\n\n[flows.F.steps.s]\ntimeout = "2 weeks"\n', "is not a duration", 5),
    ],
)
def test_errors_name_key_and_line(text, message, line):
    with pytest.raises(ConfigError) as info:
        parse_config_text(text, "workbench.toml")
    assert message in str(info.value)
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"workbench.toml:{line}: ")


def test_unknown_key_lists_allowed_keys():
    with pytest.raises(ConfigError, match=r"allowed in \[docker\]: image, env, network"):
        parse_config_text('[docker]\nimg = "x"\n')


def test_effective_settings_precedence(project):
    path = write_flow(project, "train.py", FLOW)
    graph = load_graph(path)
    cfg = load_config()
    s = effective_settings(graph, "start", cfg)
    assert (s.backend, s.cpu, s.memory, s.gpu, s.timeout, s.retries, s.retry_delay, s.env) == (
        "local",
        2.0,
        8000,
        1,
        300,
        2,
        0.0,
        {"A": "1"},
    )
    assert s.sources["memory"] == "@resources"
    t = effective_settings(graph, "train", cfg)
    assert (t.backend, t.cpu, t.memory, t.queue) == ("batch", 4.0, 4000, "gpu-queue")
    # workbench.toml beats the decorator, the command line beats both
    (project / "workbench.toml").write_text(
        '[project]\nname = "t"\n[flows.TrainFlow.steps.train]\nbackend = "kubernetes"\nmemory = "32G"\n'
    )
    cfg = load_config()
    t = effective_settings(graph, "train", cfg)
    assert (t.backend, t.memory, t.cpu) == ("kubernetes", 32768, 4.0)
    assert t.sources["memory"] == "workbench.toml [flows.TrainFlow.steps.train]"
    t = effective_settings(graph, "train", cfg, {"memory": "64G", "gpu": 2})
    assert (t.memory, t.gpu, t.sources["gpu"]) == (65536, 2, "--gpu")
    # a backend's default image follows the backend, whichever layer chose it
    (project / "workbench.toml").write_text('[docker]\nimage = "d:1"\n[kubernetes]\nimage = "k:1"\n')
    cfg = load_config()
    assert effective_settings(graph, "end", cfg).image is None  # local
    assert effective_settings(graph, "end", cfg, {"backend": "docker"}).image == "d:1"
    assert effective_settings(graph, "train", cfg, {"backend": "kubernetes"}).image == "k:1"
    assert effective_settings(graph, "train", cfg).image == "d:1"  # @batch without [batch] image
    with pytest.raises(UsageError, match="--gpu: gpu = -1 must be a whole number"):
        effective_settings(graph, "train", cfg, {"gpu": -1})


def test_bad_decorator_value_names_flow_line(project):
    path = write_flow(project, "f.py", FLOW.replace("memory=8000", 'memory="lots"'))
    with pytest.raises(FlowError) as info:
        effective_settings(load_graph(path), "start", load_config())
    assert info.value.line == 4 and "@resources: memory = 'lots' is not a size" in str(info.value)


def test_edits_keep_comments_byte_for_byte(tmp_path):
    path = tmp_path / "workbench.toml"
    path.write_text(COMMENTED)
    diff = edit_step(path, "TrainFlow", "train", {"backend": "batch", "gpu": 1, "memory": "32G"})
    text = path.read_text()
    assert text.startswith(COMMENTED), "everything that was there stays byte-for-byte"
    assert "+[flows.TrainFlow.steps.train]" in diff and '+memory = "32G"' in diff
    assert load_config(path=path).model.flows["TrainFlow"].steps["train"].gpu == 1
    # promote again with other values: only that table changes
    edit_step(path, "TrainFlow", "train", {"gpu": 2, "memory": None})
    text2 = path.read_text()
    assert text2.startswith(COMMENTED) and "gpu = 2" in text2 and "memory" not in text2.split("steps.train]")[1]
    # demote: back to the original file exactly
    edit_step(path, "TrainFlow", "train", {}, remove=True)
    assert path.read_text() == COMMENTED
    # editing an existing table keeps its comment
    edit_step(path, "TrainFlow", "other", {"cpu": 4})
    assert path.read_text() == COMMENTED.replace("cpu = 2", "cpu = 4")


def test_dry_run_and_invalid_edit_write_nothing(tmp_path):
    path = tmp_path / "workbench.toml"
    path.write_text(COMMENTED)
    diff = edit_step(path, "F", "s", {"cpu": 8}, dry_run=True)
    assert "+cpu = 8" in diff and path.read_text() == COMMENTED
    with pytest.raises(ConfigError, match="memory"):
        edit_step(path, "F", "s", {"memory": "16Q"})
    assert path.read_text() == COMMENTED
