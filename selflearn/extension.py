"""Entry point (group maas.extensions): mounts self-learning on the app; maas never imports it."""

from __future__ import annotations

from fastapi import FastAPI

from maas.service import Service, params_from_settings
from selflearn import api, tuning_api
from selflearn.emulator.runs import EmulatorRuns
from selflearn.manager.extension import mount as mount_manager
from selflearn.paramsource import TunerParams
from selflearn.sensor import Sensor
from selflearn.settings import SelflearnSettings
from selflearn.teacher.experiment import Experiments
from selflearn.teacher.guardrails import Monitor


def extend(app: FastAPI, service: Service, settings: SelflearnSettings | None = None) -> None:
    """Admin routes, the sensor task, the Tuner's parameter source, experiments and the
    automatic rollback monitor."""
    settings = settings or SelflearnSettings()
    app.include_router(api.router)
    app.include_router(tuning_api.router)
    runs = EmulatorRuns(service, settings)
    app.state.selflearn_emulator = runs
    service.add_task("selflearn-emulator", runs.stop_all_at_shutdown)
    if settings.sensor:
        sensor = Sensor(lambda: service.dsn, settings.sensor_poll_s, settings.sensor_batch)
        app.state.selflearn_sensor = sensor
        service.add_task("selflearn-sensor", sensor.run_forever)
    source = _tune(service, settings) if settings.tuner else None
    app.state.selflearn_params = source
    experiments = Experiments(service, runs, settings, source)
    app.state.selflearn_experiments = experiments
    service.add_task("selflearn-experiments", experiments.stop_all_at_shutdown)
    mount_manager(app, service, settings, runs, experiments, source)  # goals, cycles (#8)
    if settings.auto_rollback:
        monitor = Monitor(
            lambda: service.runtime.pool if service.runtime else None,
            settings.auto_rollback_s,
            settings.auto_rollback_window,
            source.invalidate if source else (lambda: None),
        )
        service.add_task("selflearn-auto-rollback", monitor.run_forever)


def _tune(service: Service, settings: SelflearnSettings) -> TunerParams | None:
    """The Tuner's versions become MaaS's parameters, unless the app was given its own source
    (a test, an embedding application): that choice is kept."""
    if service.params is not None:
        return None
    fallback = params_from_settings(service.settings)
    source = TunerParams(lambda: service.runtime.pool if service.runtime else None, fallback,
                         settings.params_poll_s)  # fmt: skip
    service.params = source
    return source
