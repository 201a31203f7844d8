"""core/v1 Services in the emulator: enough for headless Services that give pods DNS names.

- ``prepare_service``: defaulting and validation as the API server does for what the emulator supports: the
  name is an RFC 1035 label (at most 63 characters, starts with a letter), ``type`` ClusterIP only, ``clusterIP``
  "None" (headless) or unset (then a made-up address from 10.96.0.0/12 is assigned, and nothing routes to it),
  ports default their protocol to TCP and ``targetPort`` to ``port``.
- ``pod_hosts``: the names cluster DNS would give a pod's peers, for the kubelet to write into the container's
  /etc/hosts (docker ``extra_hosts``; the containers share the host's network, so every name maps to 127.0.0.1).
  As kube-dns does for a headless Service S in namespace N: every pod that S selects and that has
  ``hostname`` H and ``subdomain`` S is ``H.S``, ``H.S.N``, ``H.S.N.svc`` and ``H.S.N.svc.cluster.local``
  (short names through the search path). ``publishNotReadyAddresses`` is accepted; readiness is not modelled,
  so records exist as soon as the pod does.

Not emulated: no kube-proxy (a ClusterIP routes nowhere), no Endpoints/EndpointSlices objects, no DNS server:
names are fixed in /etc/hosts when a container is created, so a pod sees the peers that existed then (an
Indexed Job creates every pod up to ``parallelism`` in one pass, before any container starts) and a Service
created after a pod's container started is never seen by it. A pod's own ``hostname`` is not set in its
container (pods share the host network; see the README).
"""

from __future__ import annotations

import copy
import itertools
import re

from .objects import Invalid
from .store import ApiError

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ips = itertools.count(1)
LOOPBACK = "127.0.0.1"


def prepare_service(body: dict, namespace: str | None) -> dict:
    obj = copy.deepcopy(body)
    obj["apiVersion"], obj["kind"] = "v1", "Service"
    meta = obj.setdefault("metadata", {})
    meta["namespace"] = namespace or "default"
    name = meta.get("name") or ""
    inv = Invalid("Service", "", name)
    if not name:
        raise ApiError(422, "Invalid", 'Service "" is invalid: metadata.name: Required value: name is required')
    if len(name) > 63 or not _DNS1035.match(name):
        inv.invalid(
            "metadata.name",
            name,
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
            "alphabetic character, and end with an alphanumeric character",
        )
    spec = obj.setdefault("spec", {})
    kind = spec.setdefault("type", "ClusterIP")
    if kind != "ClusterIP":
        inv.not_supported("spec.type", kind, ["ClusterIP"])
    if not isinstance(spec.get("selector") or {}, dict):
        inv.invalid("spec.selector", spec.get("selector"), "must be a map of labels")
    for i, port in enumerate(spec.get("ports") or []):
        if not isinstance(port.get("port"), int) or not 0 < port["port"] < 65536:
            inv.invalid(f"spec.ports[{i}].port", port.get("port"), "must be between 1 and 65535, inclusive")
        port.setdefault("protocol", "TCP")
        port.setdefault("targetPort", port.get("port"))
    inv.raise_if_any()
    if spec.get("clusterIP") in (None, ""):
        n = next(_ips)
        spec["clusterIP"] = f"10.96.{n // 250}.{n % 250 + 1}"
    spec["clusterIPs"] = [spec["clusterIP"]]
    spec.setdefault("sessionAffinity", "None")
    spec.setdefault("ipFamilies", ["IPv4"])
    obj["status"] = {"loadBalancer": {}}
    return obj


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def pod_hosts(store, pod: dict) -> dict[str, str]:
    """/etc/hosts entries for ``pod``: its subdomain's peers (itself included), when that headless Service exists."""
    spec, namespace = pod["spec"], pod["metadata"]["namespace"]
    subdomain = spec.get("subdomain")
    if not subdomain:
        return {}
    service = store.find("services", namespace, subdomain)
    if service is None:
        return {}
    selector = (service.get("spec") or {}).get("selector") or {}
    hosts: dict[str, str] = {}
    for peer in store.list("pods", namespace)[0]:
        ps = peer["spec"]
        if ps.get("subdomain") != subdomain or not ps.get("hostname"):
            continue
        if not _selects(selector, peer["metadata"].get("labels") or {}):
            continue
        base = f"{ps['hostname']}.{subdomain}"
        for name in (base, f"{base}.{namespace}", f"{base}.{namespace}.svc", f"{base}.{namespace}.svc.cluster.local"):
            hosts[name] = LOOPBACK
    return hosts
