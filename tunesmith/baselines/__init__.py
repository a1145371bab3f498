"""Baselines: prompt engineering (zero/few-shot) and retrieval (RAG) prompt strategies."""
