"""What Metaflow's conformance families CatchRetryTest, TagCatchTest, TimeoutDecoratorTest,
BasicParallelTest, DetectSegFaultTest and ConstantsTest check, as a workbench user sees it: a crashed
task's stderr, @catch's exception types, @retry's attempts in task.metadata, a @parallel gang's control
task and its @catch fallback, class constants as artifacts. End to end on the local runtime (and one
scheduler test, events in and instructions out)."""

import signal

from workbench import events as ev
from workbench.backends.base import TaskExit
from workbench.client import Flow, namespace
from workbench.datastore.records import TaskStatus
from workbench.exitcodes import exit_from_code
from workbench.scheduler import Submit, TaskExited, WriteTask
from workbench.settings import StepSettings

from .conftest import write_flow
from .test_runtime import run
from .test_switch import GANG, flow


def _latest(ds, name):
    namespace(ds.url)
    return Flow(name).latest_run


# ------------------------------------------------------------------------------------------ signals
def test_exit_words_say_what_the_signal_means():
    assert exit_from_code(-signal.SIGSEGV, None, {}).reason == (
        "killed by SIGSEGV (segmentation fault: the process read or wrote memory it does not own)"
    )
    assert "OOM killer" in exit_from_code(-signal.SIGKILL, None, {}).reason
    assert exit_from_code(-signal.SIGUSR1, None, {}).reason == "killed by SIGUSR1"


def test_a_task_that_segfaults_says_so_in_its_stderr(project):
    write_flow(
        project,
        "crash.py",
        """
        from workbench import FlowSpec, step

        class CrashFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                import ctypes

                print("Crash and burn!")
                ctypes.string_at(0)
        """,
    )
    result, events, ds = run(project, "crash.py")
    assert result.status == "failed"
    end = _latest(ds, "CrashFlow")["end"].task
    assert "Crash and burn!" in end.stdout
    assert "segmentation fault" in end.stderr  # as Metaflow's runtime says it


# ------------------------------------------------------------------------------------------ @catch, @timeout
def test_catch_stores_metaflow_type_names(project):
    write_flow(
        project,
        "caught.py",
        """
        import time

        from workbench import FlowSpec, catch, step, timeout
        from workbench.exception import ExternalCommandFailed

        class OwnError(Exception):
            pass

        class CaughtFlow(FlowSpec):
            @catch(var="start_ex", print_exception=False)
            @step
            def start(self):
                raise KeyError("no such key")
                self.next(self.a)

            @catch(var="a_ex", print_exception=False)
            @step
            def a(self):
                raise ExternalCommandFailed("catch me!")
                self.next(self.b)

            @catch(var="b_ex", print_exception=False)
            @timeout(seconds=1)
            @step
            def b(self):
                time.sleep(10)
                self.next(self.c)

            @catch(var="c_ex", print_exception=False)
            @step
            def c(self):
                raise OwnError("mine")
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    result, events, ds = run(project, "caught.py")
    assert result.status == "succeeded", result.message
    data = _latest(ds, "CaughtFlow")["end"].task.data
    assert data.start_ex.type == "builtins.KeyError"
    assert (data.a_ex.type, data.a_ex.exception) == ("metaflow.exception.ExternalCommandFailed", "catch me!")
    assert data.b_ex.type == "metaflow.plugins.timeout_decorator.TimeoutException"
    assert data.c_ex.type == "caught.OwnError"  # the user's own exceptions keep their real names
    assert _latest(ds, "CaughtFlow")["a"].task.exception is None  # handled: the task did not fail


# ------------------------------------------------------------------------------------------ @retry metadata
def test_each_attempt_of_a_retried_task_is_in_its_metadata(project):
    write_flow(
        project,
        "flaky.py",
        """
        from workbench import FlowSpec, current, retry, step

        class FlakyFlow(FlowSpec):
            @retry(times=2, minutes_between_retries=0)
            @step
            def start(self):
                self.seen = current.retry_count
                if current.retry_count < 2:
                    raise RuntimeError("not yet")
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    result, events, ds = run(project, "flaky.py")
    assert result.status == "succeeded", result.message
    task = _latest(ds, "FlakyFlow")["start"].task
    assert sorted(m.value for m in task.metadata if m.type == "attempt") == ["0", "1", "2"]
    ok = [m.value for m in sorted(task.metadata, key=lambda m: m.created_at) if m.name == "attempt_ok"]
    assert ok == ["False", "False", "True"]
    assert task.metadata_dict["attempt"] == "2" and task.data.seen == 2
    assert all(m.task is task for m in task.metadata)
    end = _latest(ds, "FlakyFlow")["end"].task
    assert [m.value for m in end.metadata if m.type == "attempt"] == ["0"]


# ------------------------------------------------------------------------------------------ @parallel
def test_a_killed_gang_under_catch_falls_back_on_its_control_task_alone():
    from .test_scheduler import Sim

    sim = Sim(flow(GANG), settings={"train": StepSettings(catch=True, catch_var="ex", backend="docker", image="x")})
    sim.start()
    sim.ok("1")
    killed = TaskExit(TaskStatus.FAILED, -9, "killed by SIGKILL")
    sim.feed(TaskExited("3", 0, killed, None, 0.0))
    sim.feed(TaskExited("2", 0, TaskExit(TaskStatus.CANCELLED, None, "cancelled"), None, 0.0))
    out = sim.feed(TaskExited("4", 0, TaskExit(TaskStatus.CANCELLED, None, "cancelled"), None, 0.0))
    records = {i.record.task_id: i.record for i in out if isinstance(i, WriteTask)}
    assert {k: r.status for k, r in records.items()} == {"3": "failed", "4": "failed"}  # the workers end
    (fallback,) = [i for i in out if isinstance(i, Submit)]
    assert (fallback.key, fallback.spec.attempt, fallback.backend) == ("2", 1, "local")
    assert fallback.spec.catch_fallback == "node 1 of the gang failed: killed by SIGKILL"
    assert fallback.spec.parallel["node_index"] == 0
    out = sim.ok("2")
    (join,) = [i for i in out if isinstance(i, Submit)]
    assert join.spec.step == "join" and [i.pathspec for i in join.spec.inputs] == ["F/9/train/2"]


def test_a_gang_under_catch_whose_nodes_are_killed_goes_on_with_its_control_task(project):
    write_flow(
        project,
        "gang_catch.py",
        """
        import os
        import signal

        from workbench import FlowSpec, catch, current, parallel, step

        class GangCatchFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.train, num_parallel=3)

            @catch(var="ex", print_exception=False)
            @parallel
            @step
            def train(self):
                os.kill(os.getpid(), signal.SIGKILL)
                self.next(self.join)

            @step
            def join(self, inputs):
                self.n_inputs = len(inputs)
                self.types = [i.ex.type for i in inputs]
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    result, events, ds = run(project, "gang_catch.py")
    assert result.status == "succeeded", result.message
    run_ = _latest(ds, "GangCatchFlow")
    train = run_["train"]
    (control,) = list(train.control_tasks())
    assert train.control_task == control and control.metadata_dict["internal_task_type"] == "control_task"
    assert sorted(m.value for m in control.metadata if m.type == "attempt") == ["0", "1"]  # + the fallback
    workers = [t for t in train if t != control]
    assert len(workers) == 2 and all(not t.successful for t in workers)
    assert all([m.value for m in t.metadata if m.type == "attempt"] == ["0"] for t in workers)
    join = run_["join"].task.data
    assert join.n_inputs == 1 and join.types == ["metaflow.plugins.catch_decorator.FailureHandledByCatch"]
    retries = [e for e in events if isinstance(e, ev.TaskRetrying)]
    assert retries == []  # the fallback is not a retry of the user's code


def test_only_a_gangs_control_task_must_call_next(project):
    write_flow(
        project,
        "gang_return.py",
        """
        from workbench import FlowSpec, Parameter, current, parallel, step

        class GangReturnFlow(FlowSpec):
            lazy_node = Parameter("lazy_node", default=1)

            @step
            def start(self):
                self.next(self.train, num_parallel=2)

            @parallel
            @step
            def train(self):
                self.node = current.parallel.node_index
                if self._graph[current.step_name].parallel_step and self.node == self.lazy_node:
                    return  # as Metaflow's tests do on worker nodes run locally
                self.next(self.join)

            @step
            def join(self, inputs):
                self.nodes = sorted(i.node for i in inputs)
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    result, _, ds = run(project, "gang_return.py")
    assert result.status == "succeeded", result.message
    assert _latest(ds, "GangReturnFlow")["join"].task.data.nodes == [0, 1]
    result, _, ds = run(project, "gang_return.py", {"lazy_node": "0"})
    assert result.status == "failed"
    control = _latest(ds, "GangReturnFlow")["train"].control_task
    assert control.reason == "RuntimeError: step train returned without calling self.next()"


def test_graph_view_marks_parallel_steps():
    from workbench.flowspec import GraphView
    from workbench.graph import build_graph

    graph = GraphView(build_graph("flow.py", source=flow(GANG)))  # what flow._graph returns
    assert [n.name for n in graph if n.parallel_step] == ["train"]
    assert [n.name for n in graph if n.parallel_foreach] == ["start"]


# ------------------------------------------------------------------------------------------ constants
def test_class_constants_own_and_inherited_are_artifacts_of_every_task(project):
    write_flow(
        project,
        "constants.py",
        """
        from workbench import FlowSpec, Parameter, step

        class Base(FlowSpec):
            SHARED = "from the base class"

        class ConstantsFlow(Base):
            LIMIT = 3
            TABLE = {"a": 1}
            _private = "not an artifact"
            alpha = Parameter("alpha", default=5)

            def helper(self):
                return self.LIMIT

            @step
            def start(self):
                self.items = [1, 2]
                self.next(self.work, foreach="items")

            @step
            def work(self):
                try:
                    self.LIMIT = 4
                except AttributeError:
                    self.refused = True
                self.next(self.join)

            @step
            def join(self, inputs):
                self.refused_all = all(i.refused for i in inputs)
                self.next(self.end)

            @step
            def end(self):
                pass
        """,
    )
    result, events, ds = run(project, "constants.py")
    assert result.status == "succeeded", result.message
    run_ = _latest(ds, "ConstantsFlow")
    tasks = [t for step in run_ for t in step]
    assert len(tasks) == 5
    for task in tasks:
        assert (task["LIMIT"].data, task["SHARED"].data, task["TABLE"].data) == (3, "from the base class", {"a": 1})
        assert "helper" not in task and "_private" not in task
    assert run_["join"].task.data.refused_all is True
    assert "alpha" in run_["start"].task  # a parameter stays a parameter
