"""Door checks of plain values, shared by every public function: numbers (numpy scalars too), integers and
seeds, dtypes. Each error says what was given and what to give. A leaf: imports nothing from conceptlab."""
from __future__ import annotations

import math
import numbers

import torch


def as_number(value, name: str, hint: str, lo: float | None = None, hi: float | None = None) -> float:
    """A finite real number (int, float or numpy scalar, not bool) within [lo, hi] -> float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number ({hint}), got {value!r}")
    return _within(float(value), name, hint, lo, hi, "")


def as_int(value, name: str, hint: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (int or numpy integer, not bool) within [lo, hi] -> int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer ({hint}), got {value!r}")
    return _within(int(value), name, hint, lo, hi, "an integer ")


def _within(value, name: str, hint: str, lo, hi, kind: str):
    """value itself when lo <= value <= hi (either bound may be None), else an error naming the range."""
    if (lo is None or value >= lo) and (hi is None or value <= hi):
        return value
    span = f"from {lo:g} to {hi:g}" if lo is not None and hi is not None else (f">= {lo:g}" if lo is not None else f"<= {hi:g}")
    raise ValueError(f"{name} must be {kind}{span} ({hint}), got {value!r}")


def as_seed(seed) -> int:
    """A seed for torch.Generator: an integer from 0 to 2**63 - 1."""
    return as_int(seed, "seed", "the same seed gives the same result, e.g. seed=0", 0, 2 ** 63 - 1)


def as_list(values, name: str, hint: str) -> list:
    """A non-empty list or tuple -> list (a lone value is an error that shows the list to give)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, (list, tuple)) or not values:
        raise ValueError(f"{name} must be a non-empty list ({hint}), got {values!r}; for one value write [{values!r}]")
    return list(values)


DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
          "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


def as_dtype(dtype) -> torch.dtype:
    """torch.float32 / float16 / bfloat16, or their names ("float16", "fp16", "bf16", ...)."""
    if isinstance(dtype, torch.dtype) and dtype in DTYPES.values():
        return dtype
    if isinstance(dtype, str) and dtype.lower().removeprefix("torch.") in DTYPES:
        return DTYPES[dtype.lower().removeprefix("torch.")]
    raise ValueError(f"dtype must be torch.float32, torch.float16 or torch.bfloat16 (or their names: 'float32', "
                     f"'float16', 'bfloat16'), got {dtype!r}")
