"""@parallel nodes that talk: node 0 listens on a TCP port, nodes 1..N-1 connect to ``current.parallel.main_ip``
and send their value; once every node has sent, node 0 answers each with the total. So every node ends with
the same total, learned through node 0. ``fail_node`` makes one node raise before it talks (on every attempt, or
only the first with ``fail_once``); ``hold`` keeps every node waiting that many seconds first."""

import socket
import time
import zlib

from workbench import FlowSpec, Parameter, current, parallel, step

WAIT = 120.0  # seconds node 0 waits for the others, and the others keep trying to reach node 0


def gang_port() -> int:
    """One port per gang and attempt, the same on every node (other runs, and a retried gang's first attempt still
    stopping, may share the host's network)."""
    key = f"{current.run_id}/{current.parallel.control_task_id}/{current.retry_count}".encode()
    return 10000 + zlib.crc32(key) % 20000  # below Linux's ephemeral ports (32768-60999): no client holds it


def serve(value: int, num_nodes: int, port: int) -> int:
    server = socket.create_server(("0.0.0.0", port), reuse_port=False)
    server.settimeout(WAIT)
    peers, total = [], value
    with server:
        while len(peers) < num_nodes - 1:
            conn, _ = server.accept()
            conn.settimeout(WAIT)
            total += int(conn.makefile("r").readline())
            peers.append(conn)
        for conn in peers:
            with conn:
                conn.sendall(f"{total}\n".encode())
    return total


def send(main_ip: str, value: int, port: int) -> int:
    deadline = time.time() + WAIT
    while True:
        try:
            conn = socket.create_connection((main_ip, port), timeout=WAIT)
            break
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.2)
    with conn:
        conn.sendall(f"{value}\n".encode())
        return int(conn.makefile("r").readline())


class GangExchangeFlow(FlowSpec):
    nodes = Parameter("nodes", default=3)
    fail_node = Parameter("fail_node", default=-1)
    fail_once = Parameter("fail_once", default=False)
    hold = Parameter("hold", default=0)

    @step
    def start(self):
        self.next(self.train, num_parallel=self.nodes)

    @parallel
    @step
    def train(self):
        p = current.parallel
        print(f"node {p.node_index} of {p.num_nodes}, main_ip {p.main_ip}", flush=True)
        time.sleep(self.hold)
        if p.node_index == self.fail_node and not (self.fail_once and current.retry_count > 0):
            raise RuntimeError(f"node {p.node_index} fails")
        self.node_index, self.num_nodes, self.main_ip = p.node_index, p.num_nodes, p.main_ip
        self.value = (p.node_index + 1) * 10
        if p.node_index == 0:
            self.total = serve(self.value, p.num_nodes, gang_port())
        else:
            self.total = send(p.main_ip, self.value, gang_port())
        print(f"node {p.node_index} total {self.total}", flush=True)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.totals = sorted((i.node_index, i.total) for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        print("totals", self.totals)
