# Copyright Netflix, Inc. Licensed under the Apache License, Version 2.0 (see tests/conformance/NOTICE).
# Vendored unmodified from Netflix/metaflow test/core/tests/timeout_decorator.py at d2dd7f953574369d5b4715822b12377d44ba1cf8.
from metaflow_test import MetaflowTest, ExpectationFailed, steps, tag


class TimeoutDecoratorTest(MetaflowTest):
    """
    Test that checks that the timeout decorator works as intended.
    """

    PRIORITY = 2
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

    @tag('catch(var="ex", print_exception=False)')
    @tag("timeout(seconds=1)")
    @steps(0, ["singleton-start", "foreach-inner"], required=True)
    def step_sleep(self):
        self.check = True
        import time

        time.sleep(5)

    @steps(1, ["all"])
    def step_all(self):
        pass

    def check_results(self, flow, checker):
        run = checker.get_run()
        if run:
            timeout_raised = False
            for step in run:
                for task in step:
                    if "check" in task.data:
                        extype = (
                            "metaflow.plugins.timeout_decorator." "TimeoutException"
                        )
                        assert_equals(extype, str(task.data.ex.type))
                        timeout_raised = True
            assert_equals(True, timeout_raised)
