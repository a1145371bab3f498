"""The assessment as markdown and as one self-contained HTML page, written atomically into a folder."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from tunesmith.assess.readiness import NOT_YET, READY, Assessment
from tunesmith.paths import atomic_write_text

STATUS_MARK = {READY: "✅ ready", NOT_YET: "⛔ not yet", "caution": "⚠️ caution"}
STATUS_COLOUR = {READY: "#1a7f37", NOT_YET: "#cf222e", "caution": "#9a6700"}


def render_markdown(a: Assessment) -> str:
    lines = [f"# Is fine-tuning {a.model} ready? **{STATUS_MARK[a.verdict]}**", ""]
    if a.use_case:
        lines += [f"> {a.use_case}", ""]
    lines += [f"- {r}" for r in a.verdict_reasons] + [""]
    for f in a.findings:
        lines += [f"## {f.question} — {STATUS_MARK[f.status]}", ""]
        lines += [f"- {r}" for r in f.reasons]
        if f.next_steps:
            lines += ["", "Next steps:", "", "```sh", *f.next_steps, "```"]
        lines.append("")
    if a.baselines:
        lines += ["## Baselines", "", "| strategy | model | kind | n | metric | mean | 95% CI | prompt tokens |",
                  "|---|---|---|---|---|---|---|---|"]
        for b in a.baselines:
            ci = f"{b['ci95'][0]:.3g}–{b['ci95'][1]:.3g}" if b["ci95"] else ""
            mean = f"{b['mean']:.3g}" if b["mean"] is not None else ""
            tokens = f"{b['prompt_tokens_mean']:.0f}" if b["prompt_tokens_mean"] else ""
            lines.append(f"| {b['strategy']} | {b['model']} | {b['kind']} | {b['n']} | {b['metric'] or ''} | "
                         f"{mean} | {ci} | {tokens} |")
        lines.append("")
    if a.curve:
        lines += ["## Learning curve", "", a.curve["message"], ""]
        lines += [f"![learning curve]({a.curve['plot']})", ""] if a.curve.get("plot") else []
    if a.cost:
        lines += ["## Cost estimate", "", "```json", json.dumps(a.cost, indent=2), "```", ""]
    return "\n".join(lines)


def render_html(a: Assessment) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tunesmith readiness</title><style>"
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
        ".s{font-weight:600;padding:.1rem .5rem;border-radius:.3rem;color:#fff}"
        "pre{background:#f6f8fa;padding:.7rem;overflow:auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ddd;padding:.25rem .5rem}blockquote{color:#555}</style></head><body>",
        f"<h1>Is fine-tuning {esc(a.model)} ready? {_badge(a.verdict)}</h1>",
    ]
    if a.use_case:
        parts.append(f"<blockquote>{esc(a.use_case)}</blockquote>")
    parts.append("<ul>" + "".join(f"<li>{esc(r)}</li>" for r in a.verdict_reasons) + "</ul>")
    for f in a.findings:
        parts.append(f"<h2>{esc(f.question)} {_badge(f.status)}</h2><ul>"
                     + "".join(f"<li>{esc(r)}</li>" for r in f.reasons) + "</ul>")
        if f.next_steps:
            parts.append("<p>Next steps:</p><pre>" + esc("\n".join(f.next_steps)) + "</pre>")
    if a.baselines:
        head = "".join(f"<th>{h}</th>" for h in ("strategy", "model", "kind", "n", "metric", "mean", "95% CI"))
        rows = "".join(
            "<tr>" + "".join(f"<td>{esc(str(v))}</td>" for v in (
                b["strategy"], b["model"], b["kind"], b["n"], b["metric"] or "",
                "" if b["mean"] is None else f"{b['mean']:.3g}",
                f"{b['ci95'][0]:.3g}–{b['ci95'][1]:.3g}" if b["ci95"] else "")) + "</tr>"
            for b in a.baselines)
        parts.append(f"<h2>Baselines</h2><table><tr>{head}</tr>{rows}</table>")
    if a.curve:
        parts.append(f"<h2>Learning curve</h2><p>{esc(a.curve['message'])}</p>" + _curve_image(a.curve))
    if a.cost:
        parts.append("<h2>Cost estimate</h2><pre>" + esc(json.dumps(a.cost, indent=2)) + "</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_assessment(a: Assessment, output_dir: Path) -> list[Path]:
    """assessment.md, assessment.html and assessment.json in `output_dir`."""
    out = Path(output_dir)
    files = {"assessment.md": render_markdown(a), "assessment.html": render_html(a),
             "assessment.json": json.dumps(a.to_dict(), indent=2)}
    for name, text in files.items():
        atomic_write_text(out / name, text)
    return [out / name for name in files]


def _curve_image(curve: dict) -> str:
    """The curve's plot inlined, so the page stays one self-contained file."""
    plot = Path(curve["plot"]) if curve.get("plot") else None
    if plot is None or not plot.is_file():
        return ""
    data = base64.b64encode(plot.read_bytes()).decode()
    return f"<img alt='learning curve' style='max-width:100%' src='data:image/png;base64,{data}'>"


def _badge(status: str) -> str:
    return f"<span class='s' style='background:{STATUS_COLOUR[status]}'>{html.escape(status)}</span>"
