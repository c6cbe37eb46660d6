"""Helpers for tests, benchmarks and the demo (import transformers/torch only when called)."""
