"""Self-learning (Phase 2): emulator, sensor, teacher, tuner, manager (docs/selflearn/README.md).

An extension of MaaS (entry points `maas.extensions` and `maas.commands`): it reaches MaaS only
through its host (maas.host.ExtensionHost), the HTTP API, the run notifications, read-only views
and the ParamSource port; MaaS never imports it.
"""
