"""Should this use case be fine-tuned, and what would it cost? Readiness and cost, read from the evidence
the other areas record (data files, eval directories, benchmarks)."""

from tunesmith.assess.cost import CostEstimate, UsageAssumptions, estimate_cost, estimate_cost_from_tokens
from tunesmith.assess.readiness import CAUTION, NOT_YET, READY, Assessment, Finding, assess

__all__ = ["assess", "Assessment", "Finding", "READY", "NOT_YET", "CAUTION", "estimate_cost",
           "estimate_cost_from_tokens", "CostEstimate", "UsageAssumptions"]
