# Copyright Netflix, Inc. Licensed under the Apache License, Version 2.0 (see tests/conformance/NOTICE).
# Vendored unmodified from Netflix/metaflow test/core/tests/card_error.py at d2dd7f953574369d5b4715822b12377d44ba1cf8.
# Todo : Write Test case on graceful error handling.
from metaflow_test import MetaflowTest, ExpectationFailed, steps, tag


class CardErrorTest(MetaflowTest):
    """
    Test that checks if the card decorator handles Errors gracefully.
    In the checker assert that the end step finished and has artifacts after failing
    to create the card on the start step.
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

    @tag('card(type="test_error_card")')
    @steps(0, ["start"])
    def step_start(self):
        self.data = "abc"

    @steps(1, ["all"])
    def step_all(self):
        self.data = "end"

    def check_results(self, flow, checker):
        checker.assert_artifact("end", "data", "end")
