"""Web test runner and chat UI (issue #4, not built yet). Mounted as a `maas.extensions` entry point."""
