# Copyright Netflix, Inc. Licensed under the Apache License, Version 2.0 (see tests/conformance/NOTICE).
# Vendored unmodified from Netflix/metaflow test/core/tests/resume_succeeded_step.py at d2dd7f953574369d5b4715822b12377d44ba1cf8.
from metaflow_test import MetaflowTest, ExpectationFailed, steps


class ResumeSucceededStepTest(MetaflowTest):
    """
    Resuming from the succeeded end step should work
    """

    RESUME = True
    # resuming on a successful step.
    RESUME_STEP = "a"
    PRIORITY = 3
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
    PARAMETERS = {"int_param": {"default": 123}}

    @steps(0, ["start"])
    def step_start(self):
        if is_resumed():
            self.data = "start_r"
        else:
            self.data = "start"

    @steps(0, ["singleton-end"], required=True)
    def step_end(self):
        if is_resumed():
            self.data = "end_r"
        else:
            self.data = "end"
            raise ResumeFromHere()

    @steps(2, ["all"])
    def step_all(self):
        if is_resumed():
            self.data = "test_r"
        else:
            self.data = "test"

    def check_results(self, flow, checker):
        for step in flow:
            # task copied in resume will not have artifact with "_r" suffix.
            if step.name == "start":
                checker.assert_artifact(step.name, "data", "start")
            # resumed step will rerun and hence data will have this "_r" suffix.
            elif step.name == "a":
                checker.assert_artifact(step.name, "data", "test_r")
            elif step.name == "end":
                checker.assert_artifact(step.name, "data", "end_r")
