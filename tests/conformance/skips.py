"""The one list of what the conformance suite leaves out, and why.

NOT_COUNTED: tests outside the counted matrix (as the conformance issue counts it): cards (workbench
renders no cards), and tests that exercise only Metaflow's extension mechanism (they import the
`metaflow_extensions.test_org` package that Metaflow's test environment installs).

Counted this way, Metaflow's test/core at the vendored commit has 147 valid pairs in its default local
context. The conformance issue counted 115; that figure could not be reproduced from this commit with any
reading of "cards, tags-only and extension-only tests aside" tried, so the suite reports its own count.

SKIPPED: counted pairs that are known not to pass yet, each with a reason a Metaflow user would accept.
They run as expected failures under pytest (strict): when one starts passing, the suite says so and the
entry must be removed.
"""

CARD_TESTS = {
    "CardDecoratorBasicTest", "CardErrorTest", "CardExtensionsImportTest", "CardImportTest", "CardResumeTest",
    "CardTimeoutTest", "CardsWithIdTest", "DefaultEditableCardTest", "DefaultEditableCardWithCustomizeTest",
    "DefaultEditableCardWithIdTest", "MultipleCardDecoratorTest", "CardComponentRefreshTest", "CardWithRefreshTest",
}
EXTENSION_ONLY_TESTS = {
    "ExtensionsTest",                    # test_step_decorator, tl_value, nondecoplugin from the test extension
    "FlowOptionsTest",                   # test_flow_decorator from the test extension
    "BasicUnboundedForeachTest",         # InternalTestUnboundedForeachInput from the test extension
    "NestedUnboundedForeachTest",        # same
    "BasicUnboundedForeachResumeTest",   # same
}
NOT_COUNTED = CARD_TESTS | EXTENSION_ONLY_TESTS

_SCHEDULER = "scheduled for the scheduler work (wave 2, after the runtime becomes scheduler + driver)"
_SWITCH = "needs switch (self.next({...}, condition=...)): " + _SCHEDULER
_RECURSIVE = "needs recursive switch (a step that loops back): " + _SCHEDULER
_PARALLEL = "needs @parallel / self.next(..., num_parallel=N) and current.parallel: " + _SCHEDULER
_SWITCH_GRAPHS = ["simple_switch", "nested_switch", "branch_in_switch", "foreach_in_switch", "switch_in_branch",
                  "switch_in_foreach"]

SKIPPED: dict[tuple[str, str], str] = {
    **{(t, g): _SWITCH for t, g in [
        ("BasicSwitchTest", "simple_switch"), ("NestedSwitchTest", "nested_switch"),
        ("BranchInSwitchTest", "branch_in_switch"), ("ForeachInSwitchTest", "foreach_in_switch"),
        ("SwitchInBranchTest", "switch_in_branch"), ("SwitchInForeachTest", "switch_in_foreach")]},
    **{(t, g): _RECURSIVE for t, g in [
        ("RecursiveSwitchFlowTest", "recursive_switch"),
        ("RecursiveSwitchInsideForeachFlowTest", "recursive_switch_inside_foreach"),
        ("ResumeRecursiveSwitchFlowTest", "recursive_switch"),
        ("ResumeRecursiveSwitchInsideForeachFlowTest", "recursive_switch_inside_foreach")]},
    # every test that runs on the small-parallel graph, and the @parallel-only tests
    ("*", "small-parallel"): _PARALLEL,
    ("BasicParallelTest", "*"): _PARALLEL,
    ("ResumeUBFJoinTest", "*"): _PARALLEL,
    # retry timing: @retry without minutes_between_retries waits 2 minutes under workbench, at once under
    # Metaflow's local runtime
    ("TagCatchTest", "*"): "needs @retry to retry at once when minutes_between_retries is not given (Metaflow's "
                           "local runtime does): " + _SCHEDULER,
    ("CatchRetryTest", "*"): "needs @catch to store the exception's full type name (metaflow_test.TestRetry, "
                             "not TestRetry): the @catch item of the conformance issue",
    ("TimeoutDecoratorTest", "*"): "needs @timeout's exception stored as Metaflow's TimeoutException type name: "
                                   "the @catch item of the conformance issue",
    ("DetectSegFaultTest", "*"): "needs a task killed by a signal to say so in its stderr ('segmentation fault'): "
                                 "the task-exit work of the scheduler/driver split",
    ("BasicConfigTest", "*"): "needs Config / config_expr (the Config item of the conformance issue)",
    ("SecretsDecoratorTest", "*"): "needs @secrets with inline sources (the @secrets item of the conformance issue)",
    ("ConstantsTest", "*"): "needs class-level constants saved as artifacts of every task (task output saving, "
                            "owned by the artifact-summary work)",
    ("BasicParameterTest", "*"): "needs Parameter(separator=...) to split the value into a list (the static "
                                 "parameter spec does not carry separator yet)",
}

# skipped pairs too slow to run as expected failures in the CI subset (each waits out @retry's 2-minute
# pauses until its pair times out); the whole matrix (WORKBENCH_CONFORMANCE=all) still runs them
SLOW_WHILE_FAILING = {"TagCatchTest"}
