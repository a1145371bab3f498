"""The main job `make demo` runs: the query-language example end to end (examples/querylang/pipeline.py).

Readiness → data validation → prompt-engineering and RAG baselines → LoRA fine-tune of the offline
default model → evaluation → paired comparison report → summary. Arguments pass through to the pipeline.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from examples.querylang.pipeline import main as run_pipeline

    run_pipeline(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
