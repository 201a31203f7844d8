"""What the cluster's nodes can hold: the largest pod (for ``workbench promote``) and whether a pending pod
would fit an empty node (then it waits for room instead of failing). Read from the node list, at most once
a minute; unknown (None) where the nodes cannot be listed (RBAC)."""

from __future__ import annotations

import re
import time
from typing import Any, Optional

from ..errors import WorkbenchError
from .base import Capacity
from .k8s_manifest import JobOptions, gpu_key, resources

NODES_MAX_AGE = 60.0  # seconds a node list is reused


def _quantity_like(value) -> bool:
    return isinstance(value, str) and bool(re.match(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+|[numkKMGTPE]i?)?$", value))


class NodeCapacity:
    """Mixed into the Kubernetes backend: needs ``self.api`` (a KubernetesApi) and ``self.section``."""

    api: Any
    section: Any
    _nodes: Optional[tuple[float, Optional[list]]] = None  # (read at, [(labels, allocatable)] or None)

    def capacity(self) -> Optional[Capacity]:
        """The largest pod a node can hold: the most allocatable cpu, memory and GPUs over schedulable nodes."""
        try:
            self._nodes = None  # read afresh
            nodes = self._node_allocatable()
        except WorkbenchError:  # no usable configuration
            return None
        if not nodes:  # unreachable, not allowed to list nodes, or none schedulable: unknown
            return None
        key = gpu_key(self.section.gpu_vendor)
        return Capacity(
            cpu=max(a.get("cpu", 0.0) for _, a in nodes),
            memory=int(max(a.get("memory", 0.0) for _, a in nodes) // (1024 * 1024)),
            gpu=int(max(a.get(key, 0.0) for _, a in nodes)),
            source=f"largest allocatable over {len(nodes)} node(s) of {self.api.url}",
        )

    def _node_allocatable(self) -> Optional[list[tuple[dict, dict]]]:
        """(labels, allocatable as numbers) of the schedulable nodes, read at most once a minute; None when the
        nodes cannot be listed (RBAC)."""
        now = time.time()
        if self._nodes is not None and now - self._nodes[0] < NODES_MAX_AGE:
            return self._nodes[1]
        from kubernetes.utils import parse_quantity

        try:
            items = self.api.call("list nodes", self.api.client("core").list_node, _request_timeout=10).items
        except WorkbenchError:
            self._nodes = (now, None)
            return None
        nodes = []
        for node in items:
            if node.spec is not None and node.spec.unschedulable:
                continue
            alloc = (node.status.allocatable if node.status else None) or {}
            nodes.append(
                (
                    dict(node.metadata.labels or {}),
                    {k: float(parse_quantity(v)) for k, v in alloc.items() if _quantity_like(v)},
                )
            )
        self._nodes = (now, nodes)
        return nodes

    def fits_some_node(self, settings, options: JobOptions) -> Optional[bool]:
        """Whether an empty node could hold the pod (requests/limits vs allocatable, node selector); None: unknown."""
        nodes = self._node_allocatable()
        if nodes is None:
            return None
        from kubernetes.utils import parse_quantity

        res = resources(settings, options.gpu_vendor)
        want = {k: float(parse_quantity(v)) for k, v in {**res["limits"], **res["requests"]}.items()}
        for labels, alloc in nodes:
            if any(labels.get(k) != str(v) for k, v in options.node_selector.items()):
                continue
            if all(alloc.get(k, 0.0) >= v for k, v in want.items() if k != "ephemeral-storage" or k in alloc):
                return True
        return False
