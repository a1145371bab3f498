"""Fuzzing the whole API from its own OpenAPI spec (schemathesis): whatever a client sends, the answer is never
a 5xx. Bounded: FUZZ_EXAMPLES cases per operation (about a minute in all on one CPU core).

    OMP_NUM_THREADS=1 pytest tests/server/test_fuzz_openapi.py -q

Hooks keep the cases meaningful: `model` (in bodies and paths) is drawn from names this server knows or
nearly knows, so requests get past the model lookup and into generation; generated lengths are capped so a
valid chat request costs milliseconds on `tiny-random`.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

schemathesis = pytest.importorskip("schemathesis")  # the `dev` extra
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.errors import Unsatisfiable  # noqa: E402

from tests.server.live_server import running_server  # noqa: E402
from tunesmith.server.settings import ServerSettings  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("TUNESMITH_FUZZ_EXAMPLES", "15"))
BUDGET_S = 75.0  # past this, no further operation is fuzzed (CI stays bounded on a slow machine)
MODELS = ["tiny-random", "ft:tiny-random::fuzzjob", "ft:tiny-random::fuzzjob:ckpt-step-24",
          "ft:tiny-random::fuzzjob:ckpt-step-24/../../..", "gpt-4o-mini", ""]
CONVERSATIONS = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["system", "user", "assistant"]),
                                                 "content": st.text(max_size=40)}), min_size=1, max_size=3)


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    settings_ = ServerSettings(data_dir=tmp_path_factory.mktemp("fuzz"), max_upload_bytes=256 * 1024)
    with running_server(settings_) as url:
        schema = schemathesis.openapi.from_url(url + "/openapi.json")

        @schema.hook
        def flatmap_body(_context, body):
            if not isinstance(body, dict):
                return st.just(body)
            capped = {**body}
            for key in ("max_tokens", "max_completion_tokens"):
                if isinstance(capped.get(key), int) and capped[key] > 4:
                    capped[key] = 4
            if isinstance(capped.get("n"), int) and capped["n"] > 2:
                capped["n"] = 2
            if "messages" in capped:  # as generated, or a plain chat that reaches generation
                plain = st.fixed_dictionaries({"model": st.sampled_from(MODELS), "messages": CONVERSATIONS,
                                               "max_tokens": st.integers(1, 4), "seed": st.integers(0, 2**63 - 1),
                                               "stream": st.booleans(), "n": st.integers(1, 2)})
                return st.one_of(st.sampled_from(MODELS).map(lambda m: {**capped, "model": m}), plain)
            if "model" in capped:
                return st.sampled_from(MODELS).map(lambda m: {**capped, "model": m})
            return st.just(capped)

        @schema.hook
        def flatmap_path_parameters(_context, params):
            for key in ("model_id", "deployment"):
                if key in (params or {}):
                    return st.sampled_from(MODELS[:-1]).map(lambda m, k=key: {**params, k: m})
            return st.just(params)

        yield schema


def test_no_request_gets_a_server_error(api_schema):
    """Valid and invalid cases (schemathesis' positive and negative modes) for every operation in the spec."""
    from schemathesis import GenerationMode

    started, statuses, chat, errors = time.monotonic(), Counter(), Counter(), []

    def send(case) -> None:
        response = case.call(timeout=60)
        statuses[response.status_code] += 1
        if case.path.endswith("/chat/completions"):
            chat[response.status_code] += 1
        if response.status_code >= 500:
            errors.append(f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
                          f"\n  body: {str(case.body)[:300]}")

    # the OpenAI API first, then the studio's; each valid and invalid in turn
    operations = sorted((result.ok() for result in api_schema.get_all_operations()),
                        key=lambda op: (op.path.startswith("/ui-api"), op.path))
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if time.monotonic() - started > BUDGET_S:
                break
            run = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
                           suppress_health_check=list(HealthCheck))(given(operation.as_strategy(mode))(send))
            try:
                run()
            except Unsatisfiable:  # no invalid case exists for an operation without parameters
                pass
    seconds = time.monotonic() - started
    print(f"\nfuzzed {len(operations)} operations: {sum(statuses.values())} requests in {seconds:.0f} s, "
          f"statuses {dict(sorted(statuses.items()))}; chat completions {dict(sorted(chat.items()))}")
    assert not errors, "\n".join(errors[:10])
