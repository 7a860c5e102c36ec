"""Kubernetes resource quantities ("500m", "16Gi", "1.5", "2e3") parsed to exact Decimals, and back to text.

Grammar as in k8s.io/apimachinery resource.Quantity: a signed decimal number followed by a binary suffix
(Ki Mi Gi Ti Pi Ei), a decimal suffix (n u m k M G T P E) or a decimal exponent (e3, E-2).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
            "P": Decimal("1e15"), "E": Decimal("1e18")}
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                       r"(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]{1,3})?")
# Kubernetes itself refuses quantities beyond ~2^63 units; anything near that is a typo, not a request.
_LARGEST = Decimal(2) ** 63


class QuantityError(ValueError):
    """Not a Kubernetes quantity; the message says what was expected."""


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """The exact value of a quantity: parse_quantity("500m") == Decimal("0.5"), ("16Gi") == 17179869184."""
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError(f"not a quantity: {value!r}")
        number = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        match = _QUANTITY.fullmatch(text)
        if not match:
            raise QuantityError(f"not a quantity: {value!r} (examples: 500m, 2, 16Gi, 512Mi)")
        digits, suffix = match.group(1), match.group(2) or ""
        try:
            number = Decimal(digits)
        except InvalidOperation as e:  # pragma: no cover - the regex only lets decimals through
            raise QuantityError(f"not a quantity: {value!r}") from e
        if suffix in _BINARY:
            number *= _BINARY[suffix]
        elif suffix in _DECIMAL:
            number *= _DECIMAL[suffix]
        else:
            number = number.scaleb(int(suffix[1:]))
    else:
        raise QuantityError(f"not a quantity: {type(value).__name__}")
    if abs(number) >= _LARGEST:
        raise QuantityError(f"quantity {value!r} is too large")
    return number


def format_quantity(value: Decimal | int, kind: str = "") -> str:
    """Short human text: memory as Gi/Mi when exact ("16Gi"), cpu as cores or millicores ("1.5", "500m")."""
    value = Decimal(value)
    if kind == "memory" and value == value.to_integral_value() and value > 0:
        for suffix in ("Ei", "Pi", "Ti", "Gi", "Mi", "Ki"):
            unit = _BINARY[suffix]
            if value % unit == 0:
                return f"{int(value) // unit}{suffix}"
        return str(int(value))
    if kind == "cpu" and value != value.to_integral_value() and abs(value) < 1:
        milli = value * 1000
        if milli == milli.to_integral_value():
            return f"{int(milli)}m"
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")
