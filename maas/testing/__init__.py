"""Test and benchmark helpers (scripted fake LLM server)."""
