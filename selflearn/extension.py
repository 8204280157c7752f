"""Entry point (group maas.extensions): mounts self-learning on the app; maas never imports it."""

from __future__ import annotations

from fastapi import FastAPI

from maas.service import Service
from selflearn import api
from selflearn.emulator.runs import EmulatorRuns
from selflearn.sensor import Sensor
from selflearn.settings import SelflearnSettings


def extend(app: FastAPI, service: Service, settings: SelflearnSettings | None = None) -> None:
    """Admin routes, the sensor task and the emulator runs' shutdown job."""
    settings = settings or SelflearnSettings()
    app.include_router(api.router)
    runs = EmulatorRuns(service, settings)
    app.state.selflearn_emulator = runs
    service.add_task("selflearn-emulator", runs.stop_all_at_shutdown)
    if settings.sensor:
        sensor = Sensor(lambda: service.dsn, settings.sensor_poll_s, settings.sensor_batch)
        app.state.selflearn_sensor = sensor
        service.add_task("selflearn-sensor", sensor.run_forever)
