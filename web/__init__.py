"""The web UI (chat, run inspector, memories, test runner, dashboard); an extension of MaaS that
mounts through `maas.extensions` and its host (maas.host.ExtensionHost)."""
