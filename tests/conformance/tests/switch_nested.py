# Copyright Netflix, Inc. Licensed under the Apache License, Version 2.0 (see tests/conformance/NOTICE).
# Vendored unmodified from Netflix/metaflow test/core/tests/switch_nested.py at d2dd7f953574369d5b4715822b12377d44ba1cf8.
from metaflow_test import MetaflowTest, ExpectationFailed, steps, assert_equals


class NestedSwitchTest(MetaflowTest):
    """
    Tests a switch that leads to another switch.
    """

    PRIORITY = 2
    ONLY_GRAPHS = ["nested_switch"]

    @steps(0, ["start-nested"], required=True)
    def step_start(self):
        self.condition1 = "case1"
        self.condition2 = "case2_2"

    @steps(0, ["switch-nested"], required=True)
    def step_switch2(self):
        pass

    @steps(0, ["path-b"], required=True)
    def step_b(self):
        self.result = "Direct path B"

    @steps(0, ["path-c-nested"], required=True)
    def step_c(self):
        self.result = "Nested path C"

    @steps(0, ["path-d-nested"], required=True)
    def step_d(self):
        self.result = "Nested path D"

    @steps(1, ["end-nested"], required=True)
    def step_end(self):
        assert_equals("Nested path D", self.result)

    def check_results(self, flow, checker):
        checker.assert_artifact("d", "result", "Nested path D")
