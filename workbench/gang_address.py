"""Where a node of a @parallel gang finds node 0: ``current.parallel.main_ip`` (and MF_PARALLEL_MAIN_IP).

Each backend says it its own way, so the task entrypoint reads, first set wins:

1. ``MF_PARALLEL_MAIN_IP``: Metaflow's own variable, when something upstream already set it.
2. ``WORKBENCH_GANG_MAIN_HOST`` (Kubernetes): the DNS name of node 0's pod, ``<job>-0.<service>``, through the
   gang's headless Service. It is resolved here, retrying for up to :data:`RESOLVE_WAIT` seconds: the record
   only appears once node 0's pod exists. If it never resolves, the name itself is the answer (a warning on
   stderr says so), which every socket API still accepts.
3. ``WORKBENCH_GANG_MAIN=self`` (AWS Batch, set on node 0 of a multi-node job): AWS sets no main-node
   address on the main node itself, so node 0 takes its own (the first address its host name resolves to).
4. ``AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS`` (AWS Batch nodes 1..N-1). moto sets it to "" when its
   containers use the host's network (no container has an address of its own); then 127.0.0.1, which is
   where node 0 is on a shared host network.
5. 127.0.0.1: the local and Docker backends run every node on this machine.

No cloud library here: the task entrypoint uses this module.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Callable, Mapping, Optional

LOOPBACK = "127.0.0.1"
RESOLVE_WAIT = 120.0  # seconds a Kubernetes node waits for node 0's DNS record


def main_ip(
    environ: Optional[Mapping[str, str]] = None,
    *,
    resolve: Callable[[str], str] = socket.gethostbyname,
    wait: float = RESOLVE_WAIT,
) -> str:
    """Node 0's address for the node running this process (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    if env.get("MF_PARALLEL_MAIN_IP"):
        return env["MF_PARALLEL_MAIN_IP"]
    host = env.get("WORKBENCH_GANG_MAIN_HOST")
    if host:
        return _resolve(host, resolve, wait)
    if env.get("WORKBENCH_GANG_MAIN") == "self":
        try:
            return socket.gethostbyname_ex(socket.gethostname())[2][0]
        except (OSError, IndexError):
            return LOOPBACK
    return env.get("AWS_BATCH_JOB_MAIN_NODE_PRIVATE_IPV4_ADDRESS") or LOOPBACK


def _resolve(host: str, resolve: Callable[[str], str], wait: float) -> str:
    deadline = time.monotonic() + wait
    delay = 0.2
    while True:
        try:
            return resolve(host)
        except OSError as exc:
            if time.monotonic() >= deadline:
                print(f"workbench: node 0's name {host} did not resolve ({exc}); using the name", file=sys.stderr)
                return host
        time.sleep(delay)
        delay = min(2.0, delay * 2)
