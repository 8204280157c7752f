"""MaaS's benchmarks and their harness (`maas bench pipeline|locomo|load`) and the scripted
OpenAI-compatible LLM the tests and benchmarks use instead of a model. Not part of the service:
`maas` never imports it; it registers its command through the `maas.commands` entry point."""
