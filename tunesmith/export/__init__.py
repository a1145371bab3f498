"""Deploying a run: a merged model (merged.py), a GGUF with an Ollama Modelfile (gguf.py, modelfile.py), a vLLM
adapter folder (vllm.py), and the check that each deployed copy answers like the trained one (parity.py)."""
