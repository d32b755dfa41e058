"""`segzero-edge train plot RUN`: one PNG of a run's curves from RUN/metrics.csv.

Drawn with PIL (already a base dependency) so that plotting needs no matplotlib: one small
line chart per metric (total reward, each reward component, KL, completion length, step
time, loss), y range and step range printed on each.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

METRICS_FILE = "metrics.csv"

PANEL_W, PANEL_H, MARGIN = 360, 200, 36
COLUMNS = 3
LINE = (31, 119, 180)
GRID = (225, 225, 225)


def read_metrics(run_dir: str | Path) -> tuple[list[str], list[dict[str, float | None]]]:
    """(columns, rows) of `RUN/metrics.csv`, values as floats (None where blank)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {METRICS_FILE} in {run_dir}: is it a training run directory?")
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in reader]
        return list(reader.fieldnames or []), rows


def plotted_columns(columns: list[str]) -> list[str]:
    """The metrics worth a panel, in display order."""
    rewards = [c for c in columns if c.startswith("rewards/")]
    wanted = ["reward", *rewards, "kl", "completions/mean_length", "step_time", "loss"]
    return [c for c in wanted if c in columns]


def _draw_panel(
    draw: ImageDraw.ImageDraw,
    x0: int,
    y0: int,
    title: str,
    xs: list[float],
    ys: list[float],
    font: ImageFont.ImageFont,
) -> None:
    left, top = x0 + MARGIN + 14, y0 + 22
    right, bottom = x0 + PANEL_W - 10, y0 + PANEL_H - 26
    draw.text((x0 + 8, y0 + 4), title, fill="black", font=font)
    draw.rectangle([left, top, right, bottom], outline=(120, 120, 120))
    points = [(x, y) for x, y in zip(xs, ys, strict=True) if y is not None and math.isfinite(y)]
    if not points:
        draw.text((left + 8, top + 8), "no values", fill="gray", font=font)
        return
    lo, hi = min(p[1] for p in points), max(p[1] for p in points)
    if hi == lo:
        lo, hi = lo - 0.5, hi + 0.5
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    x_span = (x_hi - x_lo) or 1.0
    for frac in (0.25, 0.5, 0.75):
        gy = bottom - frac * (bottom - top)
        draw.line([(left + 1, gy), (right - 1, gy)], fill=GRID)
    pixels = [
        (left + (x - x_lo) / x_span * (right - left), bottom - (y - lo) / (hi - lo) * (bottom - top))
        for x, y in points
    ]
    if len(pixels) > 1:
        draw.line(pixels, fill=LINE, width=2)
    for px, py in pixels if len(pixels) <= 60 else []:
        draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=LINE)
    draw.text((x0 + 4, top - 2), f"{hi:.3g}", fill="black", font=font)
    draw.text((x0 + 4, bottom - 10), f"{lo:.3g}", fill="black", font=font)
    draw.text((left, bottom + 4), f"step {x_lo:g}", fill="black", font=font)
    label = f"{x_hi:g}"
    draw.text((right - 6 * len(label), bottom + 4), label, fill="black", font=font)


def plot_run(run: str | Path, out: str | Path | None = None) -> Path:
    """Write the run's curves to `out` (default RUN/metrics.png); returns the path."""
    run = Path(run)
    columns, rows = read_metrics(run)
    if not rows:
        raise ValueError(f"{run / 'metrics.csv'} has no rows yet: train at least one logging step")
    panels = plotted_columns(columns)
    n_rows = math.ceil(len(panels) / COLUMNS)
    image = Image.new("RGB", (COLUMNS * PANEL_W, n_rows * PANEL_H + 24), "white")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    draw.text((8, 4), f"{run.name}: {len(rows)} logged steps", fill="black", font=font)
    steps = [row["step"] for row in rows]
    for i, name in enumerate(panels):
        x0, y0 = (i % COLUMNS) * PANEL_W, 24 + (i // COLUMNS) * PANEL_H
        _draw_panel(draw, x0, y0, name, steps, [row[name] for row in rows], font)  # type: ignore[misc]
    out = Path(out) if out is not None else run / "metrics.png"
    import io

    from segzero_edge.safe_write import atomic_write_bytes

    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(out, buf.getvalue(), "--out")
    return out
