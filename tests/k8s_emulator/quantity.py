"""Kubernetes resource.Quantity parsing (``500m``, ``2``, ``16Gi``, ``512M``, ``1e3``)."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
# Same grammar as k8s.io/apimachinery/pkg/api/resource: <signedNumber><suffix>, where the
# suffix is a binary SI suffix, a decimal SI suffix or a decimal exponent (e/E followed by digits).
_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+|[numkMGTPE]?)$"
)
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"


class QuantityError(ValueError):
    pass


def parse_quantity(value) -> Decimal:
    """Return the quantity as an exact Decimal (``"500m"`` -> ``Decimal("0.5")``)."""
    if isinstance(value, bool):
        raise QuantityError(f"invalid quantity {value!r}")
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    if not isinstance(value, str):
        raise QuantityError(f"invalid quantity {value!r}")
    match = _QUANTITY_RE.match(value.strip())
    if not match:
        raise QuantityError(f"quantities must match the regular expression '{QUANTITY_PATTERN}'")
    try:
        number = Decimal(match.group("num"))
    except InvalidOperation as exc:  # pragma: no cover - regex already filters
        raise QuantityError(str(exc)) from exc
    suffix = match.group("suffix")
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))  # decimal exponent


def to_int_ceil(value) -> int:
    """Quantity rounded up to an integer (memory bytes, GPU count)."""
    return int(math.ceil(parse_quantity(value)))


def to_nano(value) -> int:
    """CPU quantity in nano-CPUs, as docker's ``nano_cpus`` wants it."""
    return int(math.ceil(parse_quantity(value) * Decimal(10**9)))


_DEC_SUFFIX = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BIN_SUFFIX = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


def canonical(value) -> str:
    """The quantity as the API server serialises it back (``0.5`` -> ``500m``, ``1024Mi`` -> ``1Gi``).

    Follows apimachinery's rules: keep the format family of the input (binary SI, decimal SI, decimal
    exponent), the largest unit that leaves an integer mantissa, precision rounded up to nano units.
    """
    suffix = ""
    if isinstance(value, str):
        match = _QUANTITY_RE.match(value.strip())
        if not match:
            return value  # validation reports it
        suffix = match.group("suffix")
    dec = parse_quantity(value)
    dec = Decimal(math.ceil(dec * 10**9)) / 10**9  # nano precision, rounded up
    sign, dec = ("-", -dec) if dec < 0 else ("", dec)
    if suffix in _BINARY and dec >= 1024 and dec == dec.to_integral_value():
        n, k = int(dec), 0
        while n % 1024 == 0 and k < len(_BIN_SUFFIX) - 1:
            n, k = n // 1024, k + 1
        return f"{sign}{n}{_BIN_SUFFIX[k]}"
    exponent_form = len(suffix) > 1 and suffix[0] in "eE"
    if dec == 0:
        return "0"
    for exp in sorted(_DEC_SUFFIX, reverse=True):
        mant = dec / (Decimal(10) ** exp)
        if mant == mant.to_integral_value():
            if exponent_form:
                return f"{sign}{int(mant)}" + (f"e{exp}" if exp else "")
            return f"{sign}{int(mant)}{_DEC_SUFFIX[exp]}"
    return f"{sign}{dec}"  # unreachable: nano precision always fits
