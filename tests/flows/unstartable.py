"""@catch of a task that never starts (its image does not exist): the flow goes on, as under Metaflow."""

from workbench import FlowSpec, catch, docker, step


class UnstartableFlow(FlowSpec):
    @step
    def start(self):
        self.before = 1
        self.next(self.fragile)

    @catch(var="problem")
    @docker(image="workbench-no-such-image:never")
    @step
    def fragile(self):
        self.never = True
        self.next(self.end)

    @step
    def end(self):
        print("problem", self.problem.type, "|", self.problem.exception.splitlines()[0], "| before", self.before)
