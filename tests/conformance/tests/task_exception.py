# Copyright Netflix, Inc. Licensed under the Apache License, Version 2.0 (see tests/conformance/NOTICE).
# Vendored unmodified from Netflix/metaflow test/core/tests/task_exception.py at d2dd7f953574369d5b4715822b12377d44ba1cf8.
from metaflow_test import MetaflowTest, ExpectationFailed, steps


class TaskExceptionTest(MetaflowTest):
    """
    A test to validate if exceptions are stored and retrieved correctly
    """

    PRIORITY = 1
    SKIP_GRAPHS = [
        "simple_switch",
        "nested_switch",
        "branch_in_switch",
        "foreach_in_switch",
        "switch_in_branch",
        "switch_in_foreach",
        "recursive_switch",
        "recursive_switch_inside_foreach",
    ]
    SHOULD_FAIL = True

    @steps(0, ["singleton-end"], required=True)
    def step_start(self):
        raise KeyError("Something has gone wrong")

    @steps(2, ["all"])
    def step_all(self):
        pass

    def check_results(self, flow, checker):
        run = checker.get_run()
        if run is not None:
            for task in run["end"]:
                assert_equals("KeyError" in str(task.exception), True)
                assert_equals(task.exception.exception, "'Something has gone wrong'")
