"""Progress lines for logs: every N items with rate and ETA when the output is not a terminal, silent on one."""

import io

from tunesmith.progress import log_lines


def test_a_log_gets_a_line_every_n_items_and_at_the_end():
    out = io.StringIO()
    report = log_lines("eval m", every=10, stream=out, interactive=False)
    for done in range(1, 26):
        report(done, 25)
    lines = out.getvalue().splitlines()
    assert [line.split(" items")[0] for line in lines] == ["eval m: 10/25", "eval m: 20/25", "eval m: 25/25"]
    assert "items/s" in lines[0] and "ETA" in lines[0]


def test_a_terminal_gets_no_lines():
    out = io.StringIO()
    report = log_lines("eval", stream=out, interactive=True)
    report(5, 5)
    assert out.getvalue() == ""
