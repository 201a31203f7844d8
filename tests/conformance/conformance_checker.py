"""The checkers a vendored test's ``check_results(flow, checker)`` runs against, written on workbench.

Same interface as Metaflow's MetadataCheck (its client API) and CliCheck (its command line):
``assert_artifact``, ``artifact_dict``, ``artifact_dict_if_exists``, ``assert_log``, ``get_log``,
``get_run``, the tag methods, and the card methods (cards are outside the suite: no card is ever found).
Run as ``python check_flow.py CliCheck|MetadataCheck RUN_ID [top options]`` inside a pair's directory.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile

from metaflow_test import (
    AssertArtifactFailed,
    AssertLogFailed,
    MetaflowCheck,
    assert_equals,
    assert_exception,
    truncate,
)


def _flow_steps(flow) -> set:
    return {name for name in dir(type(flow)) if getattr(getattr(type(flow), name, None), "is_step", False)}


def _compare(task: str, name: str, artifact, value, fields) -> None:
    """Metaflow's comparison: the value itself, or some fields of a dict (or of a JSON string)."""
    if not fields:
        if artifact != value:
            raise AssertArtifactFailed(
                "Task '%s' expected %s=%r but got %s=%s" % (task, name, truncate(value), name, truncate(artifact))
            )
        return
    data = json.loads(artifact) if isinstance(artifact, str) else artifact
    if not isinstance(data, dict):
        raise AssertArtifactFailed("Task '%s' expected %s to be a dictionary (got %s)" % (task, name, type(data)))
    for field, v in fields.items():
        if data.get(field, None) != v:
            raise AssertArtifactFailed(
                "Task '%s' expected %s[%s]=%r but got %s[%s]=%s"
                % (task, name, field, truncate(v), name, field, truncate(data.get(field)))
            )


class _Base(MetaflowCheck):
    def assert_artifact(self, step, name, value, fields=None):
        for task, artifacts in self.artifact_dict(step, name).items():
            if name not in artifacts:
                raise AssertArtifactFailed(
                    "Task '%s' expected %s=%s but the key was not found" % (task, name, truncate(value))
                )
            _compare(task, name, artifacts[name], value, fields)
        return True

    def assert_log(self, step, logtype, value, exact_match=True):
        log = self.get_log(step, logtype)
        if log == value or (not exact_match and value in log):
            return True
        raise AssertLogFailed(
            "Step '%s' expected task.%s='%s' but got task.%s='%s'" % (step, logtype, repr(value), logtype, repr(log))
        )

    # cards are outside the conformance suite
    def assert_card(self, step, task, card_type, value, card_hash=None, card_id=None, exact_match=True):
        raise AssertionError("cards are outside the conformance suite")

    def get_card(self, step, task, card_type, card_id=None):
        return None

    def get_card_data(self, step, task, card_type, card_id=None):
        return False, None

    def list_cards(self, step, task, card_type=None):
        return None


class MetadataCheck(_Base):
    """Checks through workbench's client API (``from workbench import Flow, namespace, ...``)."""

    def __init__(self, flow):
        from workbench.client import Flow

        self.flow = flow
        self.run = Flow(flow.name)[self.run_id]
        expected = _flow_steps(flow)
        actual = {step.id for step in self.run}
        assert actual.issubset(expected), f"Executed steps {actual} not a subset of flow steps {expected}"
        self._test_namespace()

    def _test_namespace(self):
        from workbench.client import Flow, default_namespace, get_namespace, namespace
        from workbench.exception import MetaflowNamespaceMismatch

        assert_equals("user:%s" % os.environ.get("METAFLOW_USER"), get_namespace())
        assert_equals(True, self.run_id in [run.id for run in Flow(self.flow.name)])
        namespace("user:nobody")
        assert_equals(get_namespace(), "user:nobody")
        assert_exception(lambda: Flow(self.flow.name)[self.run_id], MetaflowNamespaceMismatch)
        namespace(None)
        assert_equals(get_namespace(), None)
        Flow(self.flow.name)[self.run_id]
        default_namespace()

    def get_run(self):
        return self.run

    def artifact_dict(self, step, name):
        return {task.id: {name: task[name].data} for task in self.run[step]}

    def artifact_dict_if_exists(self, step, name):
        return {task.id: {name: task[name].data} for task in self.run[step] if name in task}

    def get_log(self, step, logtype):
        return "".join(getattr(task, logtype) for task in self.run[step])

    def get_user_tags(self):
        return self.run.user_tags

    def get_system_tags(self):
        return self.run.system_tags

    def add_tag(self, tag):
        return self.run.add_tag(tag)

    def add_tags(self, tags):
        return self.run.add_tags(tags)

    def remove_tag(self, tag):
        return self.run.remove_tag(tag)

    def remove_tags(self, tags):
        return self.run.remove_tags(tags)

    def replace_tag(self, tag_to_remove, tag_to_add):
        return self.run.replace_tag(tag_to_remove, tag_to_add)

    def replace_tags(self, tags_to_remove, tags_to_add):
        return self.run.replace_tags(tags_to_remove, tags_to_add)


class CliCheck(_Base):
    """Checks through the flow's command line, as a Metaflow user types it: ``python test_flow.py dump``,
    ``logs`` and ``tag``."""

    def __init__(self, flow):
        self.flow = flow

    def run_cli(self, args):
        cmd = [sys.executable, "test_flow.py"]
        cmd.extend(opt for opt in self.cli_options if opt != "--quiet")
        cmd.extend(args)
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)

    def artifact_dict(self, step, name):
        fd, path = tempfile.mkstemp(dir=".")
        os.close(fd)
        try:
            self.run_cli(["dump", "--private", "--include", name, "--file", path, "%s/%s" % (self.run_id, step)])
            with open(path, "rb") as f:
                return pickle.load(f)
        finally:
            os.remove(path)

    def artifact_dict_if_exists(self, step, name):
        return self.artifact_dict(step, name)

    def get_log(self, step, logtype):
        proc = self.run_cli(["--quiet", "logs", "--%s" % logtype, "%s/%s" % (self.run_id, step)])
        return proc.stdout.decode("utf-8")

    def get_user_tags(self):
        proc = self.run_cli(["tag", "list", "--flat", "--hide-system-tags", "--run-id", self.run_id])
        return frozenset(proc.stderr.decode("utf-8").splitlines()[1:])

    def get_system_tags(self):
        proc = self.run_cli(["tag", "list", "--flat", "--run-id", self.run_id])
        return frozenset(proc.stderr.decode("utf-8").splitlines()[1:]) - self.get_user_tags()

    def add_tag(self, tag):
        self.run_cli(["tag", "add", "--run-id", self.run_id, tag])

    def add_tags(self, tags):
        self.run_cli(["tag", "add", "--run-id", self.run_id, *tags])

    def remove_tag(self, tag):
        self.run_cli(["tag", "remove", "--run-id", self.run_id, tag])

    def remove_tags(self, tags):
        self.run_cli(["tag", "remove", "--run-id", self.run_id, *tags])

    def replace_tag(self, tag_to_remove, tag_to_add):
        self.run_cli(["tag", "replace", "--run-id", self.run_id, tag_to_remove, tag_to_add])

    def replace_tags(self, tags_to_remove, tags_to_add):
        cmd = ["tag", "replace", "--run-id", self.run_id]
        for tag in tags_to_remove:
            cmd.extend(["--remove", tag])
        for tag in tags_to_add:
            cmd.extend(["--add", tag])
        self.run_cli(cmd)
