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
    "CardDecoratorBasicTest",
    "CardErrorTest",
    "CardExtensionsImportTest",
    "CardImportTest",
    "CardResumeTest",
    "CardTimeoutTest",
    "CardsWithIdTest",
    "DefaultEditableCardTest",
    "DefaultEditableCardWithCustomizeTest",
    "DefaultEditableCardWithIdTest",
    "MultipleCardDecoratorTest",
    "CardComponentRefreshTest",
    "CardWithRefreshTest",
}
EXTENSION_ONLY_TESTS = {
    "ExtensionsTest",  # test_step_decorator, tl_value, nondecoplugin from the test extension
    "FlowOptionsTest",  # test_flow_decorator from the test extension
    "BasicUnboundedForeachTest",  # InternalTestUnboundedForeachInput from the test extension
    "NestedUnboundedForeachTest",  # same
    "BasicUnboundedForeachResumeTest",  # same
}
NOT_COUNTED = CARD_TESTS | EXTENSION_ONLY_TESTS

SKIPPED: dict[tuple[str, str], str] = {}

# skipped pairs too slow to run as expected failures in the CI subset (each waits out @retry's 2-minute
# pauses until its pair times out); the whole matrix (WORKBENCH_CONFORMANCE=all) still runs them
SLOW_WHILE_FAILING: set[str] = set()  # none since @retry retries at once
