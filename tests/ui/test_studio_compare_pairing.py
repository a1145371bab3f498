"""The studio's compare page says how many items paired, why two evals do not pair, and the prompt-token saving
beside the accuracy delta, as `tunesmith compare` prints them (issue 18). Headless Chromium, as test_studio."""

from __future__ import annotations

import json

from tests.ui.fixtures import write_eval_dir


def test_compare_page_shows_pairing_counts_and_the_prompt_token_saving(page, studio):
    base, tuned = studio.evals
    page.goto(f"/#/evals/compare?ids={base},{tuned}")
    section = page.locator("section.comparison")
    section.wait_for()
    assert "Paired 12 items by question: 0 only in the baseline, 0 only in the candidate." in \
        section.locator("p.pairing").first.inner_text()
    header = section.locator("thead").inner_text()
    assert "Delta" in header and "Prompt tokens" in header
    assert "12 → 12 (0.0% fewer)" in section.locator("tbody tr").first.inner_text()


def test_compare_page_says_first_why_two_evals_do_not_pair(page, studio):
    base, _ = studio.evals
    other = write_eval_dir(studio.data_dir / "evals" / "other-test-file", "tiny-random", "zero-shot", {0, 1},
                           "2026-11-27T03:00:00Z")
    rows = [json.loads(line) for line in (other / "predictions.jsonl").read_text().splitlines()]
    for row in rows:  # other questions, as on another test file
        row["messages"][0]["content"] = row["messages"][0]["content"].replace("What is", "Compute")
        row["reference"] = row["reference"] + "0"
    (other / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = json.loads((other / "summary.json").read_text())
    (other / "summary.json").write_text(json.dumps({**summary, "data": "other.jsonl"}))
    try:
        page.goto(f"/#/evals/compare?ids={base},other-test-file")
        section = page.locator("section.comparison")
        section.wait_for()
        alert = section.locator(".msg.error").first.inner_text()
        assert alert.startswith("Does not pair:") and "different test files" in alert, alert
        assert page.get_by_text("different test files").count() == 1  # said once, not again among the warnings
        assert "Paired 0 items by question: 12 only in the baseline, 12 only in the candidate." in \
            section.locator("p.pairing").first.inner_text()
    finally:
        import shutil

        shutil.rmtree(other)
