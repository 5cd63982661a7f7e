"""The one home of numbers in a ``google.protobuf.Struct``.

A Struct carries every number as a double, so ``7`` arrives as ``7.0``;
the contract stores and answers it as ``7``. Pure.
"""
from __future__ import annotations

import math
from typing import Any


def restore_integers(value: Any) -> Any:
    """Struct carries numbers as doubles: give integral ones back as ints."""
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: restore_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [restore_integers(v) for v in value]
    return value
