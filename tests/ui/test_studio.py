"""The studio in a real browser against a real server: data report, a live training curve, a comparison,
the playground streaming, and every page usable by keyboard at laptop and phone widths."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.ui.fixtures import write_broken_file, write_training_file

pytestmark = pytest.mark.timeout(600)
TERMINAL = ("succeeded", "failed", "cancelled")


def upload(studio, path: Path) -> str:
    with open(path, "rb") as f:
        r = studio.api.post("/v1/files", files={"file": (path.name, f)}, data={"purpose": "fine-tune"})
    r.raise_for_status()
    return r.json()["id"]


def wait_for_job(studio, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = studio.api.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.5)
    raise AssertionError(f"{job_id} still {job['status']} after {timeout}s")


@pytest.fixture(scope="session")
def fine_tuned_model(studio, tmp_path_factory) -> str:
    """A model fine-tuned from tiny-random through the API, for the playground and models pages."""
    file_id = upload(studio, write_training_file(tmp_path_factory.mktemp("ft") / "sums.jsonl"))
    job = studio.api.post("/v1/fine_tuning/jobs", json={"model": "tiny-random", "training_file": file_id,
                                                         "suffix": "sums", "hyperparameters": {"n_epochs": 1}}).json()
    job = wait_for_job(studio, job["id"])
    assert job["status"] == "succeeded", job
    return job["fine_tuned_model"]


def test_upload_shows_the_validation_report(page, studio, screenshots, tmp_path):
    page.goto("/#/data")
    page.set_input_files("#upload-file", str(write_broken_file(tmp_path / "broken.jsonl")))
    page.click("main form button[type=submit]")
    report = page.locator("#report")
    report.wait_for(timeout=120_000)  # the first report loads the tokenizer
    assert "Not ready to train" in report.inner_text()
    errors = page.locator("section[aria-labelledby=errors-h] tbody tr")
    rows = [errors.nth(i).inner_text() for i in range(errors.count())]
    assert any(r.startswith("13") and "unrecognized_role" in r for r in rows), rows
    assert any(r.startswith("14") and "example_missing_assistant_message" in r for r in rows), rows
    stats = report.locator("dl.stats").inner_text()
    assert "Default epochs\n9" in stats  # OpenAI's rule for 12 examples: ceil(100 / 12)
    billing = report.locator("dt:text-is('Billing tokens / epoch') + dd").inner_text()
    assert billing.replace(",", "").isdigit() and int(billing.replace(",", "")) > 12 * 10
    assert page.locator("figure svg rect[data-count]").count() >= 2  # the token histogram
    page.screenshot(path=str(screenshots / "data-report.png"), full_page=True)


def test_job_page_draws_the_loss_curve_live(page, studio, screenshots, tmp_path):
    file_id = upload(studio, write_training_file(tmp_path / "sums.jsonl"))
    page.goto(f"/#/jobs?training_file={file_id}")
    page.select_option("#job-model", "tiny-random")
    assert page.input_value("#job-training-file") == file_id
    page.fill("#n_epochs", "20")  # 480 steps: long enough to watch several redraws, some seconds on a CPU
    page.fill("#job-suffix", "live")
    page.click("#create-job button[type=submit]")
    page.wait_for_url("**/#/jobs/ftjob-*")
    job_id = page.url.rsplit("/", 1)[-1]

    curve = page.locator('#curves path[data-series="training"]').first
    seen: list[int] = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if curve.count():
            seen.append(int(curve.get_attribute("data-points")))
        status = studio.api.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"]
        if status in TERMINAL:
            break
        time.sleep(0.25)
    assert status == "succeeded"
    page.locator("h1 .badge.succeeded").wait_for()  # the page noticed the end by itself
    final = int(curve.get_attribute("data-points"))
    growth = sorted(set(seen))
    assert len(growth) >= 2 and growth[0] < final, f"the curve never grew while the job ran: {growth}"
    assert page.locator('#curves path[data-series="training"]').count() == 2  # loss and token accuracy
    assert page.locator("#ckpt-h + * tbody tr").count() >= 1
    page.screenshot(path=str(screenshots / "job.png"), full_page=True)
    page.goto("/#/jobs")
    page.locator(f"a[href='#/jobs/{job_id}']").wait_for()
    page.screenshot(path=str(screenshots / "jobs.png"), full_page=True)


def test_job_page_pauses_resumes_and_cancels(page, studio, tmp_path):
    file_id = upload(studio, write_training_file(tmp_path / "long.jsonl"))
    job = studio.api.post("/v1/fine_tuning/jobs", json={"model": "tiny-random", "training_file": file_id,
                                                         "hyperparameters": {"n_epochs": 50}}).json()
    page.goto(f"/#/jobs/{job['id']}")
    badge = page.locator("main h1 .badge")
    page.locator("main h1 .badge.running").wait_for(timeout=120_000)
    page.get_by_role("button", name="Pause").click()
    page.locator("main h1 .badge.paused").wait_for(timeout=60_000)  # the worker checkpointed and stopped
    page.get_by_role("button", name="Resume").click()
    page.locator("main h1 .badge.queued, main h1 .badge.running").first.wait_for()
    page.get_by_role("button", name="Cancel").click()
    page.locator("main h1 .badge.cancelled").wait_for(timeout=60_000)
    assert badge.inner_text() == "cancelled"
    assert page.get_by_role("button", name="Resume").count() == 0 and page.get_by_role("button", name="Cancel").count() == 0
    for said in ("The job was paused", "The job was resumed", "cancel"):
        page.locator("ol.events li", has_text=said).first.wait_for()


def test_comparison_shows_verdicts_and_the_items_side_by_side(page, studio, screenshots):
    base, tuned = studio.evals
    page.goto("/#/evals")
    page.check(f"#pick-{base}")
    page.check(f"#pick-{tuned}")
    page.screenshot(path=str(screenshots / "evals.png"), full_page=True)
    page.click("#eval-list button[type=submit]")
    section = page.locator("section.comparison")
    section.wait_for()
    row = section.locator("tbody tr").first.inner_text()
    assert "exact_match" in row and "Improved" in row and "+0.583" in row
    assert page.locator("#score-bars svg rect").count() == 2  # one bar per eval run
    broken = section.locator("details.broken")
    assert broken.get_attribute("open") is not None
    item = broken.locator("[data-item=q02]")
    outputs = [o.inner_text() for o in item.locator(".out pre").all()]
    assert outputs[1:] == ["11", "11", "18"]  # reference, baseline's answer, fine-tuned answer
    section.locator("details.fixed summary").click()
    assert section.locator("details.fixed [data-item]").count() == 8
    page.screenshot(path=str(screenshots / "compare.png"), full_page=True)


PANES = ("pane-A", "pane-B")
# Count the updates each pane's replies get: streaming shows the text in several steps, not once at the end.
COUNT_REPLY_UPDATES = """() => { window.updates = {};
    for (const pane of document.querySelectorAll('.chat-pane')) {
        window.updates[pane.id] = 0;
        new MutationObserver((records) => window.updates[pane.id] += records.filter((r) =>
            (r.target.nodeType === 1 ? r.target : r.target.parentElement)?.closest('.reply')).length)
            .observe(pane.querySelector('.transcript'), { childList: true, characterData: true, subtree: true });
    } }"""


def wait_for_replies(page) -> None:
    for pane in PANES:
        page.locator(f"#{pane}[data-done=true]").wait_for(timeout=120_000)


def test_playground_chats_with_both_models_over_two_turns(page, studio, fine_tuned_model, screenshots):
    page.goto(f"/#/playground?model={fine_tuned_model}")
    assert page.input_value("#model-B") == fine_tuned_model
    assert page.input_value("#model-A") == "tiny-random"  # the base it was tuned from
    model_of = {"pane-A": "tiny-random", "pane-B": fine_tuned_model}
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/chat/completions") else None)
    system = {"role": "system", "content": "You add numbers."}
    page.fill("#system-prompt", system["content"])
    page.fill("#max-tokens", "12")
    page.fill("#temperature", "1")  # sampled: random weights then show visible (if meaningless) text
    page.evaluate(COUNT_REPLY_UPDATES)

    page.fill("#user-prompt", "What is 2 plus 5?")
    page.focus("#user-prompt")
    page.keyboard.press("Control+Enter")
    wait_for_replies(page)
    first_reply = {}
    for pane in PANES:
        first_reply[pane] = page.locator(f"#{pane} .bubble.assistant .reply").text_content()
        assert first_reply[pane]  # random weights: any text, maybe only spaces
        meta = page.locator(f"#{pane} .bubble.assistant .meta").inner_text()
        assert "12 completion tokens" in meta and "finish: length" in meta, meta
        assert page.evaluate(f"window.updates['{pane}']") >= 3

    page.fill("#user-prompt", "And 3 plus 4?")
    page.get_by_role("button", name="Send to both").click()
    wait_for_replies(page)
    for pane in PANES:
        assert page.locator(f"#{pane} .bubble.user").count() == 2
        assert page.locator(f"#{pane} .bubble.assistant").count() == 2
    # The second turn carried each pane's own conversation: its model's first answer, not the other's.
    assert len(sent) == 4, sent
    for body in sent[2:]:
        pane = next(p for p, m in model_of.items() if m == body["model"])
        assert body["stream"] is True
        assert body["messages"] == [system, {"role": "user", "content": "What is 2 plus 5?"},
                                    {"role": "assistant", "content": first_reply[pane]},
                                    {"role": "user", "content": "And 3 plus 4?"}], body["messages"]
    page.screenshot(path=str(screenshots / "playground.png"), full_page=True)

    page.get_by_role("button", name="New chat").click()
    assert page.locator(".chat-pane .bubble").count() == 0
    page.fill("#max-tokens", "2")
    page.fill("#user-prompt", "What is 1 plus 1?")
    page.get_by_role("button", name="Send to both").click()
    wait_for_replies(page)
    assert [b["messages"] for b in sent[4:]] == [[system, {"role": "user", "content": "What is 1 plus 1?"}]] * 2
    assert page.locator("#pane-A .bubble").count() == 2
    page.select_option("#model-A", fine_tuned_model)  # another model: the conversation starts over
    assert page.locator(".chat-pane .bubble").count() == 0
    assert "started a new chat" in page.locator("#chat-notice").inner_text()


# The first two chat requests get a reply that streams a few known words and then waits until it is aborted, made
# in the page so the partial text is exact (a random model's is not). The server's side of an abandoned stream
# is tested in tests/server/test_inference.py.
STALLED_REPLIES = """() => { const realFetch = window.fetch; window.stalled = 0;
    window.fetch = (url, init) => {
        if (!String(url).endsWith('/v1/chat/completions') || window.stalled >= 2) return realFetch(url, init);
        window.stalled++;
        const model = JSON.parse(init.body).model, encoder = new TextEncoder();
        const body = new ReadableStream({ start(c) {
            for (const piece of ['Partial ', 'reply ', 'from ' + model])
                c.enqueue(encoder.encode('data: ' + JSON.stringify({ choices: [{ index: 0, delta: { content: piece },
                    finish_reason: null }] }) + '\\n\\n'));
            init.signal.addEventListener('abort', () => c.error(new DOMException('aborted', 'AbortError')));
        } });
        return Promise.resolve(new Response(body, { headers: { 'Content-Type': 'text/event-stream' } }));
    }; }"""


def test_playground_stop_keeps_what_arrived(page, studio, fine_tuned_model):
    page.goto(f"/#/playground?model={fine_tuned_model}")
    model_of = {"pane-A": "tiny-random", "pane-B": fine_tuned_model}
    sent: list[dict] = []
    page.on("request", lambda r: sent.append(r.post_data_json) if r.url.endswith("/v1/chat/completions") else None)
    page.locator("#model-A option").first.wait_for(state="attached")
    page.evaluate(STALLED_REPLIES)
    page.fill("#user-prompt", "Count to a thousand.")
    page.get_by_role("button", name="Send to both").click()
    for pane, model in model_of.items():
        page.locator(f"#{pane} .reply", has_text=f"from {model}").wait_for()
    assert page.get_by_role("button", name="Send to both").is_disabled()
    page.get_by_role("button", name="Stop").click()
    wait_for_replies(page)
    for pane, model in model_of.items():
        reply = page.locator(f"#{pane} .bubble.assistant.stopped")
        assert reply.locator(".meta").inner_text().startswith("stopped"), reply.inner_text()
        assert reply.locator(".reply").text_content() == f"Partial reply from {model}"
    assert page.get_by_role("button", name="Stop").is_disabled()
    page.fill("#max-tokens", "2")
    page.fill("#user-prompt", "Go on.")
    page.get_by_role("button", name="Send to both").click()  # to the real server now
    wait_for_replies(page)
    assert len(sent) == 2, sent
    for body in sent:  # the partial reply is part of its pane's conversation
        assert body["messages"][1:] == [{"role": "assistant", "content": f"Partial reply from {body['model']}"},
                                        {"role": "user", "content": "Go on."}], body["messages"]


def test_playground_shows_streamed_tool_calls(page, studio):
    """A reply that streams `delta.tool_calls` (the server's shape, crafted here) reads as a call, with its finish reason."""
    def sse(*deltas, finish=None):
        return "".join("data: " + json.dumps({"object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": d, "finish_reason": None}]}) + "\n\n" for d in deltas) + "data: " + json.dumps(
            {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}) + "\n\n"
    body = sse({"role": "assistant", "content": None},
               {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                "function": {"name": "get_weather", "arguments": ""}}]},
               {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
               {"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}, finish="tool_calls") + "data: [DONE]\n\n"
    page.route("**/v1/chat/completions", lambda route: route.fulfill(status=200, body=body,
                                                                     headers={"Content-Type": "text/event-stream"}))
    page.goto("/#/playground?model=tiny-random")
    page.fill("#user-prompt", "Weather in Oslo?")
    page.get_by_role("button", name="Send to both").click()
    wait_for_replies(page)
    for pane in PANES:
        assert page.locator(f"#{pane} .tool-calls li").inner_text() == 'calls get_weather({"city": "Oslo"})'
        assert "finish: tool_calls" in page.locator(f"#{pane} .bubble.assistant .meta").inner_text()


def test_models_page_lists_and_deletes_a_fine_tuned_model(page, studio, fine_tuned_model, screenshots):
    page.goto("/#/models")
    row = page.locator("tr", has=page.locator(f"code:text-is('{fine_tuned_model}')"))
    row.wait_for()
    assert page.locator("section[aria-label='Base models'] code:text-is('tiny-random')").count() == 1
    page.screenshot(path=str(screenshots / "models.png"), full_page=True)
    page.once("dialog", lambda d: d.accept())
    row.get_by_role("button", name=f"Delete {fine_tuned_model}").click()
    page.get_by_text(f"Deleted {fine_tuned_model}.").wait_for()
    row.wait_for(state="detached", timeout=10_000)
    ids = [m["id"] for m in studio.api.get("/v1/models").json()["data"]]
    assert fine_tuned_model not in ids


def test_cost_and_readiness_pages_report_for_an_uploaded_file(page, studio, screenshots, tmp_path):
    file_id = upload(studio, write_training_file(tmp_path / "cost.jsonl"))
    page.goto(f"/#/cost?file_id={file_id}")
    page.select_option("#model", "gpt-35-turbo-0125")
    page.click("#cost-form button[type=submit]")
    result = page.locator("#cost-result")
    result.wait_for(timeout=60_000)
    assert "Examples\n24" in result.inner_text() and "Training cost\n$" in result.inner_text()
    page.screenshot(path=str(screenshots / "cost.png"), full_page=True)

    page.goto(f"/#/readiness?file_id={file_id}")
    page.fill("#use_case", "Always answer sums in the format 'A plus B is C.'")
    page.check(f"#baseline-{studio.evals[0]}")
    page.click("#assess-form button[type=submit]")
    page.locator("#assess-result").wait_for(timeout=120_000)
    assert page.locator("#assess-result h3").count() == 4  # Azure's four readiness questions
    page.screenshot(path=str(screenshots / "readiness.png"), full_page=True)


PAGES = ["data", "evals", "jobs", "models", "playground", "readiness", "cost"]
PHONE_SHOTS = ("data", "jobs", "playground")
PHONE = {"width": 390, "height": 844}


def test_every_page_has_labels_landmarks_and_fits_a_phone(browser, studio, screenshots):
    context = browser.new_context(viewport=PHONE, base_url=studio.url)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for name in PAGES:
        page.goto(f"/#/{name}")
        page.locator("main h1").wait_for()
        unlabeled = page.evaluate("""() => [...document.querySelectorAll('input, select, textarea')]
            .filter((el) => el.type !== 'hidden' && !el.labels?.length && !el.getAttribute('aria-label'))
            .map((el) => el.id || el.outerHTML.slice(0, 60))""")
        assert not unlabeled, f"{name}: inputs without a label: {unlabeled}"
        assert page.locator("header nav[aria-label] a[aria-current=page]").count() == 1
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} scrolls sideways by {overflow}px on a phone"
        if name in PHONE_SHOTS:
            page.screenshot(path=str(screenshots / f"phone-{name}.png"))
    # Keyboard: the skip link comes first, nav links follow and open their page with Enter.
    page.goto("/#/data")
    page.locator("main h1").wait_for()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Evaluations"
    page.keyboard.press("Enter")
    page.wait_for_url("**/#/evals")
    page.locator("main h1:text-is('Evaluations')").wait_for()
    context.close()
    assert not errors, errors
