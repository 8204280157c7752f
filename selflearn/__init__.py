"""Self-learning loop (Phase 2: emulator, sensor, teacher, tuner, manager).

Not built yet — see ROADMAP.md and issues #6-#8. It will reach MaaS only through its public
surfaces: the HTTP API, NOTIFY + read-only views, and the ParamSource port.
"""
