"""A plain-text line chart of a few series over epochs (works on any terminal and in a pipe)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def line_chart(title: str, values: Sequence[float], *, height: int = 8, width: int = 60,
               x_label: str = "epoch") -> str:
    """One series as rows of text: a y axis with min/max labels, one '*' per point, '.' between them."""
    points = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not points:
        return f"{title}: no values"
    n = len(values)
    lo, hi = min(points), max(points)
    span = hi - lo or 1.0
    step = max(1, min(width // max(n - 1, 1), 8)) if n > 1 else 1
    cols = (n - 1) * step + 1
    grid = [[" "] * cols for _ in range(height)]

    def row_of(v: float) -> int:
        return height - 1 - round((v - lo) / span * (height - 1))

    prev = None
    for i, v in enumerate(values):
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            prev = None
            continue
        x, y = i * step, row_of(v)
        if prev is not None:  # a dotted segment from the previous point
            (px, pv) = prev
            for cx in range(px + 1, x):
                t = (cx - px) / (x - px)
                cy = row_of(pv + (v - pv) * t)
                if grid[cy][cx] == " ":
                    grid[cy][cx] = "."
        grid[y][x] = "*"
        prev = (x, v)
    labels = [f"{hi:.3f}" if r == 0 else f"{lo:.3f}" if r == height - 1 else "" for r in range(height)]
    pad = max(len(s) for s in labels)
    lines = [f"{title} ({x_label} 1-{n})"]
    lines += [f"{labels[r]:>{pad}} |{''.join(grid[r]).rstrip()}" for r in range(height)]
    axis = [" "] * cols
    for i in range(n):
        label = str(i + 1)
        if i == 0 or i == n - 1 or (i + 1) % 5 == 0:
            x = i * step
            if all(c == " " for c in axis[x:x + len(label)]) and x + len(label) <= cols + len(label):
                axis[x:x + len(label)] = list(label)
    lines.append(f"{'':>{pad}} +{'-' * cols}")
    lines.append(f"{'':>{pad}}  {''.join(axis).rstrip()}")
    return "\n".join(lines)
