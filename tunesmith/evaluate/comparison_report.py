"""Comparison reports: `report.md`, a self-contained `report.html` (inline SVG charts, no CDN) and
`comparison.json`, written atomically into one folder."""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

from tunesmith.artifacts.eval_dir import EvalRun
from tunesmith.evaluate.compare import ALPHA, MIN_PAIRED_ITEMS, Comparison, GraderComparison, TreatmentComparison
from tunesmith.paths import atomic_write_text

COLORS = ["#6b7280", "#2563eb", "#d97706", "#7c3aed", "#059669", "#db2777"]  # baseline grey, then treatments
VERDICT_COLORS = {"Improved": "#15803d", "Degraded": "#b91c1c", "Inconclusive": "#6b7280", "TooFewSamples": "#a16207"}


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    json: Path


def write_report(comparison: Comparison, output_dir: str | Path) -> ReportFiles:
    out = Path(output_dir)
    files = ReportFiles(out / "report.md", out / "report.html", out / "comparison.json")
    atomic_write_text(files.markdown, render_markdown(comparison))
    atomic_write_text(files.html, render_html(comparison))
    atomic_write_text(files.json, json.dumps(comparison.to_dict(), indent=2, default=_json_default) + "\n")
    return files


def _json_default(value: object) -> object:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and math.isnan(value):
        return None
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _fmt(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _p(p: float) -> str:
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def prompt_tokens_text(t: TreatmentComparison) -> str:
    """Mean prompt tokens per item, baseline → treatment, and the saving: `590 → 60 (89.8% fewer)`."""
    if t.baseline_prompt_tokens is None or t.treatment_prompt_tokens is None:
        return "n/a"
    text = f"{t.baseline_prompt_tokens:.0f} → {t.treatment_prompt_tokens:.0f}"
    saving = t.prompt_token_saving
    if saving is None:
        return text
    return text + (f" ({saving:.1%} fewer)" if saving >= 0 else f" ({-saving:.1%} more)")


# --- markdown ---------------------------------------------------------------------------------------------------


def _is_alarm(warning: str) -> bool:
    return warning.startswith("FINE-TUNED")


def render_markdown(c: Comparison) -> str:
    lines = ["# Evaluation comparison", ""]
    for warning in c.warnings:  # a worse fine-tuned model is the finding; a weaker prompt is context
        lines += [f"> **⚠ {warning}**" if _is_alarm(warning) else f"> {warning}", ""]
    lines += [f"Baseline: **{c.baseline.label}** — {c.baseline.summary.get('n', '?')} items, "
              f"data `{c.baseline.summary.get('data', '?')}`", ""]
    for t in c.treatments:
        run = t.treatment
        lines += [f"## {run.label}", "", t.pairing.describe() + ".", ""]
        if t.problem:
            lines += [f"**Does not pair with the baseline, no verdict:** {t.problem}.", ""]
            continue
        lines += [f"Prompt tokens per item (mean, baseline → this run): {prompt_tokens_text(t)}", "",
                  "| grader | n | baseline | treatment | delta | prompt tokens | 95% CI | p | test | verdict | fixed "
                  "| broken |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for g in t.graders:
            lines.append(
                f"| {g.grader} | {g.n} | {_fmt(g.baseline_mean)} | {_fmt(g.treatment_mean)} | {g.delta:+.3f} | "
                f"{prompt_tokens_text(t)} | [{_fmt(g.ci95[0])}, {_fmt(g.ci95[1])}] | {_p(g.p_value)} | {g.test} | "
                f"**{g.verdict}** | {len(g.fixed)} | {len(g.broken)} |"
            )
        lines.append("")
        for g in t.graders:
            if g.fixed or g.broken:
                lines += [f"- {g.grader}: fixed {_ids(g.fixed)}; broken {_ids(g.broken)}"]
        lines.append("")
    lines += [
        "## How to read this",
        "",
        f"Items are paired by what each asks and expects (its own turns and reference answer, not the system "
        f"prompt nor few-shot turns or retrieved context) unless `--pair-by` says otherwise. Delta = treatment − baseline. The interval is a 95% paired bootstrap. "
        f"Pass/fail graders use McNemar's exact test on the items that changed; score graders a paired "
        f"sign-flip permutation test. Verdicts: Improved / Degraded when p < {ALPHA}; Inconclusive otherwise; "
        f"TooFewSamples below {MIN_PAIRED_ITEMS} paired items.",
        "",
    ]
    return "\n".join(lines)


def _ids(ids: list[str], limit: int = 20) -> str:
    if not ids:
        return "none"
    shown = ", ".join(f"`{i}`" for i in ids[:limit])
    return shown + (f" … (+{len(ids) - limit})" if len(ids) > limit else "")


# --- html -------------------------------------------------------------------------------------------------------


def render_html(c: Comparison) -> str:
    runs = [c.baseline] + [t.treatment for t in c.treatments]
    graders = list(dict.fromkeys(g.grader for t in c.treatments for g in t.graders))
    body = ["<h1>Evaluation comparison</h1>"]
    body += [f'<div class="warn">⚠ {html.escape(w)}</div>' if _is_alarm(w) else
             f'<div class="note">{html.escape(w)}</div>' for w in c.warnings]
    body.append("<h2>Runs</h2><ul>" + "".join(
        f'<li><span class="swatch" style="background:{COLORS[i % len(COLORS)]}"></span>'
        f'{"<b>baseline</b> " if i == 0 else ""}{html.escape(r.label)} — n={r.summary.get("n", "?")}</li>'
        for i, r in enumerate(runs)) + "</ul>")
    body.append("<h2>Mean score per grader (95% CI)</h2>")
    body.append('<div class="charts">' + "".join(bar_chart_svg(g, runs) for g in graders) + "</div>")
    for t in c.treatments:
        body.append(f"<h2>{html.escape(t.treatment.label)} vs baseline</h2>")
        body.append(f"<p>{html.escape(t.pairing.describe())}.</p>")
        if t.problem:
            body.append(f'<div class="warn">Does not pair with the baseline, no verdict: {html.escape(t.problem)}.</div>')
            continue
        body.append(f"<p>Prompt tokens per item (mean, baseline → this run): "
                    f"<b>{html.escape(prompt_tokens_text(t))}</b></p>")
        body.append(_table_html(t))
        body.append("<h3>Per-item win / loss</h3>")
        body += [win_loss_svg(g) for g in t.graders]
    body.append(
        f"<p class='note'>Paired by what each item asks and expects (not its system prompt). Delta = treatment − baseline; 95% paired bootstrap interval. "
        f"McNemar exact test for pass/fail graders, paired sign-flip permutation test for scores. "
        f"Improved/Degraded when p &lt; {ALPHA}; TooFewSamples below {MIN_PAIRED_ITEMS} paired items.</p>"
    )
    return _PAGE.format(body="\n".join(body))


def _table_html(t: TreatmentComparison) -> str:
    head = "".join(f"<th>{h}</th>" for h in
                   ("grader", "n", "baseline", "treatment", "delta", "prompt tokens", "95% CI", "p", "test", "verdict",
                    "fixed", "broken"))
    rows = []
    for g in t.graders:
        color = VERDICT_COLORS.get(g.verdict, "#000")
        cells = [html.escape(g.grader), str(g.n), _fmt(g.baseline_mean), _fmt(g.treatment_mean), f"{g.delta:+.3f}",
                 html.escape(prompt_tokens_text(t)), f"[{_fmt(g.ci95[0])}, {_fmt(g.ci95[1])}]", _p(g.p_value), g.test,
                 f'<b style="color:{color}">{g.verdict}</b>', str(len(g.fixed)), str(len(g.broken))]
        rows.append("<tr>" + "".join(f"<td>{x}</td>" for x in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def bar_chart_svg(grader: str, runs: list[EvalRun]) -> str:
    """One bar per run (its mean), with a whisker for its 95% interval, on a fixed 0–1 axis."""
    width, height, top, bottom, left = 60 + 50 * len(runs), 180, 24, 150, 36
    scale = bottom - top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{html.escape(grader)}">',
             f'<text x="{width / 2}" y="14" text-anchor="middle" font-size="12">{html.escape(grader)}</text>',
             f'<line x1="{left}" y1="{bottom}" x2="{width - 8}" y2="{bottom}" stroke="#999"/>']
    for tick in (0.0, 0.5, 1.0):
        y = bottom - tick * scale
        parts.append(f'<text x="{left - 4}" y="{y + 4}" text-anchor="end" font-size="10">{tick:g}</text>'
                     f'<line x1="{left}" y1="{y}" x2="{width - 8}" y2="{y}" stroke="#eee"/>')
    for i, run in enumerate(runs):
        stats = run.summary.get("graders", {}).get(grader)
        if not stats or stats.get("mean") is None:
            continue
        x = left + 12 + 50 * i
        mean = min(max(stats["mean"], 0.0), 1.0)
        parts.append(f'<rect x="{x}" y="{bottom - mean * scale}" width="30" height="{mean * scale}" '
                     f'fill="{COLORS[i % len(COLORS)]}"><title>{html.escape(run.label)}: {mean:.3f}</title></rect>')
        if stats.get("ci95"):
            lo, hi = (min(max(v, 0.0), 1.0) for v in stats["ci95"])
            cx = x + 15
            parts.append(f'<line x1="{cx}" y1="{bottom - lo * scale}" x2="{cx}" y2="{bottom - hi * scale}" '
                         f'stroke="#111" stroke-width="1.5"/>'
                         f'<line x1="{cx - 5}" y1="{bottom - hi * scale}" x2="{cx + 5}" y2="{bottom - hi * scale}" '
                         f'stroke="#111"/><line x1="{cx - 5}" y1="{bottom - lo * scale}" x2="{cx + 5}" '
                         f'y2="{bottom - lo * scale}" stroke="#111"/>')
        parts.append(f'<text x="{x + 15}" y="{bottom + 14}" text-anchor="middle" font-size="10">'
                     f'{"base" if i == 0 else f"#{i}"}</text>')
    parts.append("</svg>")
    return "".join(parts)


def win_loss_svg(g: GraderComparison) -> str:
    """A strip of one cell per item, sorted from biggest win to biggest loss: green won, red lost, grey tied."""
    deltas = sorted(g.item_deltas.items(), key=lambda kv: -kv[1])
    cell, per_row = 10, 60
    rows = max(1, math.ceil(len(deltas) / per_row))
    wins = sum(d > 0 for _, d in deltas)
    losses = sum(d < 0 for _, d in deltas)
    width, height = per_row * cell + 4, rows * cell + 22
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
             f'<text x="2" y="12" font-size="11">{html.escape(g.grader)}: {wins} won, {losses} lost, '
             f'{len(deltas) - wins - losses} tied</text>']
    for k, (item_id, d) in enumerate(deltas):
        color = "#16a34a" if d > 0 else "#dc2626" if d < 0 else "#d1d5db"
        x, y = 2 + (k % per_row) * cell, 18 + (k // per_row) * cell
        parts.append(f'<rect x="{x}" y="{y}" width="{cell - 1}" height="{cell - 1}" fill="{color}">'
                     f'<title>{html.escape(item_id)}: {d:+.3f}</title></rect>')
    parts.append("</svg>")
    return f"<div>{''.join(parts)}</div>"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tunesmith — evaluation comparison</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #111; max-width: 1100px; }}
table {{ border-collapse: collapse; margin: .5rem 0 1rem; }}
td, th {{ border: 1px solid #ddd; padding: 4px 8px; font-size: 13px; text-align: left; }}
.warn {{ background: #fee2e2; border: 2px solid #b91c1c; color: #7f1d1d; padding: .8rem; margin: .5rem 0;
  font-weight: bold; font-size: 1.1rem; }}
.note {{ background: #f3f4f6; border-left: 4px solid #9ca3af; padding: .4rem .8rem; margin: .3rem 0; }}
.swatch {{ display: inline-block; width: 12px; height: 12px; margin-right: 6px; }}
.charts svg {{ margin-right: 1rem; }}
.note {{ color: #555; font-size: 13px; }}
</style></head><body>
{body}
</body></html>
"""
