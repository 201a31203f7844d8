# Copyright Netflix, Inc. Licensed under the Apache License, Version 2.0 (see tests/conformance/NOTICE).
# Vendored unmodified from Netflix/metaflow test/core/tests/card_resume.py at d2dd7f953574369d5b4715822b12377d44ba1cf8.
from metaflow_test import MetaflowTest, ExpectationFailed, steps, tag


class CardResumeTest(MetaflowTest):
    """
    Resuming a flow with card decorators should reference a origin task's card when calling `get_cards` or `card get` cli commands.
    """

    RESUME = True
    PRIORITY = 4
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

    @tag('card(type="taskspec_card")')
    @steps(0, ["start"])
    def step_start(self):
        from metaflow import current

        self.origin_pathspec = current.pathspec

    @steps(0, ["singleton-end"], required=True)
    def step_end(self):
        if not is_resumed():
            raise ResumeFromHere()

    @steps(2, ["all"])
    def step_all(self):
        pass

    def check_results(self, flow, checker):
        run = checker.get_run()
        if run is not None:
            for step in run.steps():
                if step.id == "start":
                    task = step.task
                    checker.assert_card(
                        step.id, task.id, "taskspec_card", "%s" % task.origin_pathspec
                    )
        else:
            for step in flow:
                if step.name != "start":
                    continue
                cli_check_dict = checker.artifact_dict(step.name, "origin_pathspec")
                for task_pathspec in cli_check_dict:
                    task_id = task_pathspec.split("/")[-1]
                    checker.assert_card(
                        step.name,
                        task_id,
                        "taskspec_card",
                        "%s" % cli_check_dict[task_pathspec]["origin_pathspec"],
                    )
