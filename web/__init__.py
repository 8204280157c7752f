"""Web test runner and chat UI (issue #4, not built yet); mounts via `maas.extensions`."""
