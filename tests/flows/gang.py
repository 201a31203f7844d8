"""@parallel: a gang of num_parallel tasks started together and joined; one node can be made to fail."""

import os
import time

from workbench import FlowSpec, Parameter, current, parallel, step


class GangFlow(FlowSpec):
    nodes = Parameter("nodes", default=3)
    fail_node = Parameter("fail_node", default=-1)

    @step
    def start(self):
        self.next(self.train, num_parallel=self.nodes)

    @parallel
    @step
    def train(self):
        p = current.parallel
        self.node = (p.node_index, p.num_nodes, p.main_ip, p.control_task_id)
        self.started = time.time()
        self.pid = os.getpid()
        if p.node_index == self.fail_node:
            raise RuntimeError(f"node {p.node_index} fails")
        if self.fail_node >= 0:
            time.sleep(30)  # the others are still running when the failing node ends: they get cancelled
        self.next(self.join)

    @step
    def join(self, inputs):
        self.nodes_seen = [i.node for i in inputs]
        self.spread = max(i.started for i in inputs) - min(i.started for i in inputs)
        self.pids = len({i.pid for i in inputs})
        self.next(self.end)

    @step
    def end(self):
        print("nodes", self.nodes_seen, "pids", self.pids)
