"""The curve as a picture: score against examples (log scale), the points' 95% intervals as a band, the fit,
the projection dashed, each baseline as a horizontal line, other models as their own markers. PNG bytes."""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def render_plot(curve: dict[str, Any]) -> bytes:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tunesmith.curve.fit import Fit

    main = sorted((p for p in curve["points"] if p["model"] == curve["model"]), key=lambda p: p["examples"])
    n = np.array([p["examples"] for p in main], dtype=float)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    ax.fill_between(n, [p["ci_low"] for p in main], [p["ci_high"] for p in main], alpha=0.2, label="95% CI")
    ax.plot(n, [p["score"] for p in main], "o", color="C0", label=f"{curve['model']} (measured)")
    fit = Fit(**{k: v for k, v in curve["fit"].items() if k != "formula"})
    projection = curve.get("projection") or []
    bounded = all(0 <= p["score"] <= 1 for p in main)  # a pass rate: the drawn fit stops at 1, as projections do
    curve_at = (lambda x: min(1.0, max(0.0, fit.predict(x)))) if bounded else fit.predict
    xs = np.geomspace(n[0], n[-1], 60)
    ax.plot(xs, [curve_at(x) for x in xs], "-", color="C0", alpha=0.8, label=fit.describe())
    if projection:
        far = np.geomspace(n[-1], projection[-1]["examples"], 30)
        ax.plot(far, [curve_at(x) for x in far], "--", color="C0", label="projection (extrapolated)")
        px = [p["examples"] for p in projection]
        ax.errorbar(px, [p["score"] for p in projection], capsize=3, fmt="none", color="C0", alpha=0.6,
                    yerr=[[p["score"] - p["low"] for p in projection], [p["high"] - p["score"] for p in projection]])
    for i, b in enumerate(curve.get("baselines") or []):
        ax.axhline(b["score"], color=f"C{i + 3}", linestyle=":", label=f"baseline: {b['label']}")
    others = sorted({p["model"] for p in curve["points"]} - {curve["model"]})
    for i, m in enumerate(others):
        pts = sorted((p for p in curve["points"] if p["model"] == m), key=lambda p: p["examples"])
        ax.plot([p["examples"] for p in pts], [p["score"] for p in pts], "s-", color=f"C{i + 1}", label=m)
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # 2×10², 3×10², … overlap; decades say it
    ax.set_xticks(sorted({p["examples"] for p in curve["points"]} | {p["examples"] for p in projection}))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlabel("training examples (log scale)")
    ax.set_ylabel(curve["metric"].rsplit(":", 1)[-1])  # python:module:function -> function
    ax.set_title(curve["verdict"]["kind"] + ": " + _short(curve["verdict"]["message"], 70), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
