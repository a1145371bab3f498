"""The OpenAI-compatible server and the studio UI."""
