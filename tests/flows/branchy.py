from workbench import FlowSpec, Parameter, current, step


class BranchyFlow(FlowSpec):
    """Static branches, nested foreach with a branch inside, joins, parameters, merge_artifacts."""

    scale = Parameter("scale", default=2, type=int)
    tag = Parameter("tag", default="t")

    @step
    def start(self):
        self.rows = [[1, 2], [3, 4, 5]]
        self.shared = "same"
        self.next(self.left, self.right)

    @step
    def left(self):
        self.side = "L"
        self.next(self.fan)

    @step
    def fan(self):
        self.next(self.row, foreach="rows")

    @step
    def row(self):
        self.row_index = self.index
        self.next(self.cell, foreach="input")

    @step
    def cell(self):
        self.value = self.input * self.scale
        self.path = [i for i, _, _ in self.foreach_stack()]
        self.next(self.double, self.triple)

    @step
    def double(self):
        self.out = self.value * 2
        self.next(self.cell_join)

    @step
    def triple(self):
        self.out = self.value * 3
        self.next(self.cell_join)

    @step
    def cell_join(self, inputs):
        self.out = inputs.double.out + inputs.triple.out
        self.merge_artifacts(inputs, exclude=["out"])
        self.next(self.row_join)

    @step
    def row_join(self, inputs):
        self.row_sum = sum(i.out for i in inputs)
        self.row_paths = [i.path for i in inputs]
        self.merge_artifacts(inputs, include=["side", "shared", "row_index"])
        self.next(self.fan_join)

    @step
    def fan_join(self, inputs):
        self.totals = [i.row_sum for i in inputs]
        self.paths = [p for i in inputs for p in i.row_paths]
        self.merge_artifacts(inputs, include=["side", "shared"])
        self.next(self.both)

    @step
    def right(self):
        self.side = "R"
        print(f"running {current.pathspec} with tag={self.tag}")
        self.next(self.both)

    @step
    def both(self, inputs):
        self.sides = sorted(i.side for i in inputs)
        self.totals = inputs.fan_join.totals
        self.paths = inputs.fan_join.paths
        self.merge_artifacts(inputs, include=["shared"])
        self.next(self.end)

    @step
    def end(self):
        print("totals", self.totals, "scale", self.scale)
