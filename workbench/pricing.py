"""A rough hourly price for a resource request: the cheapest common EC2 instance type that fits it.

Prices are on-demand Linux prices in us-east-1 as published by AWS; they change, and Batch or a
Kubernetes node pool may run something else. Always shown as an estimate, with the table's date.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

TABLE_DATE = "2025-01"
REGION = "us-east-1"

# type, vCPU, memory GiB, GPUs, USD per hour
INSTANCES: list[tuple[str, int, float, int, float]] = [
    ("t3.medium", 2, 4, 0, 0.0416),
    ("c5.large", 2, 4, 0, 0.085),
    ("c5.xlarge", 4, 8, 0, 0.17),
    ("c5.2xlarge", 8, 16, 0, 0.34),
    ("c5.4xlarge", 16, 32, 0, 0.68),
    ("c5.9xlarge", 36, 72, 0, 1.53),
    ("c5.18xlarge", 72, 144, 0, 3.06),
    ("m5.large", 2, 8, 0, 0.096),
    ("m5.xlarge", 4, 16, 0, 0.192),
    ("m5.2xlarge", 8, 32, 0, 0.384),
    ("m5.4xlarge", 16, 64, 0, 0.768),
    ("m5.8xlarge", 32, 128, 0, 1.536),
    ("m5.12xlarge", 48, 192, 0, 2.304),
    ("m5.16xlarge", 64, 256, 0, 3.072),
    ("m5.24xlarge", 96, 384, 0, 4.608),
    ("r5.large", 2, 16, 0, 0.126),
    ("r5.xlarge", 4, 32, 0, 0.252),
    ("r5.2xlarge", 8, 64, 0, 0.504),
    ("r5.4xlarge", 16, 128, 0, 1.008),
    ("r5.8xlarge", 32, 256, 0, 2.016),
    ("r5.16xlarge", 64, 512, 0, 4.032),
    ("r5.24xlarge", 96, 768, 0, 6.048),
    ("g4dn.xlarge", 4, 16, 1, 0.526),
    ("g4dn.2xlarge", 8, 32, 1, 0.752),
    ("g4dn.4xlarge", 16, 64, 1, 1.204),
    ("g4dn.8xlarge", 32, 128, 1, 2.176),
    ("g4dn.12xlarge", 48, 192, 4, 3.912),
    ("g4dn.metal", 96, 384, 8, 7.824),
    ("g5.xlarge", 4, 16, 1, 1.006),
    ("g5.2xlarge", 8, 32, 1, 1.212),
    ("g5.4xlarge", 16, 64, 1, 1.624),
    ("g5.8xlarge", 32, 128, 1, 2.448),
    ("g5.12xlarge", 48, 192, 4, 5.672),
    ("g5.24xlarge", 96, 384, 4, 8.144),
    ("g5.48xlarge", 192, 768, 8, 16.288),
    ("p3.2xlarge", 8, 61, 1, 3.06),
    ("p3.8xlarge", 32, 244, 4, 12.24),
    ("p3.16xlarge", 64, 488, 8, 24.48),
    ("p4d.24xlarge", 96, 1152, 8, 32.7726),
]


@dataclass(frozen=True)
class PriceEstimate:
    instance_type: str
    vcpu: int
    memory_gib: float
    gpu: int
    hourly_usd: float

    def describe(self) -> str:
        gpu = f", {self.gpu} GPU" if self.gpu else ""
        return (
            f"about ${self.hourly_usd:.3f}/hour ({self.instance_type}: {self.vcpu} vCPU, "
            f"{self.memory_gib:g} GiB{gpu}; {REGION} on-demand price of {TABLE_DATE}, an estimate)"
        )


def estimate(cpu: float, memory_mib: int, gpu: int) -> Optional[PriceEstimate]:
    """The cheapest listed instance type with at least this much of everything, or None."""
    fits = [i for i in INSTANCES if i[1] >= cpu and i[2] * 1024 >= memory_mib and i[3] >= gpu]
    if not fits:
        return None
    best = min(fits, key=lambda i: (i[4], i[1]))
    return PriceEstimate(*best)


def largest() -> tuple[int, float, int]:
    return (max(i[1] for i in INSTANCES), max(i[2] for i in INSTANCES), max(i[3] for i in INSTANCES))
