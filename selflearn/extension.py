"""Entry point (group maas.extensions): mounts self-learning on the app; maas never imports it."""

from __future__ import annotations

from maas.host import ExtensionHost
from maas.params import params_from_settings
from selflearn import api, tuning_api
from selflearn.emulator.runs import EmulatorRuns
from selflearn.manager.extension import mount as mount_manager
from selflearn.paramsource import TunerParams
from selflearn.sensor import Sensor
from selflearn.settings import SelflearnSettings
from selflearn.teacher.experiment import Experiments
from selflearn.teacher.guardrails import Config, Monitor


def extend(host: ExtensionHost, settings: SelflearnSettings | None = None) -> None:
    """Admin routes, the sensor task, the Tuner's parameter source, experiments and the
    automatic rollback monitor."""
    settings = settings or SelflearnSettings()
    app = host.app
    host.add_router(api.router)
    host.add_router(tuning_api.router)
    runs = EmulatorRuns(host, settings)
    app.state.selflearn_emulator = runs
    host.add_task("selflearn-emulator", runs.stop_all_at_shutdown)
    if settings.sensor:
        sensor = Sensor(lambda: host.dsn, settings.sensor_poll_s, settings.sensor_batch)
        app.state.selflearn_sensor = sensor
        host.subscribe_runs(sensor)
        host.add_task("selflearn-sensor", sensor.run_forever)
    source = _tune(host, settings) if settings.tuner else None
    app.state.selflearn_params = source
    experiments = Experiments(host, runs, settings, source)
    app.state.selflearn_experiments = experiments
    host.add_task("selflearn-experiments", experiments.stop_all_at_shutdown)
    mount_manager(host, settings, runs, experiments, source)  # goals, cycles (#8)
    if settings.auto_rollback and source is not None:  # the control needs the Tuner's source
        monitor = Monitor(
            lambda: host.pool,
            settings.auto_rollback_s,
            _monitor_config(settings),
            source.invalidate,
            lambda: _label(source),
        )
        app.state.selflearn_monitor = monitor
        host.add_task("selflearn-auto-rollback", monitor.run_forever)


def _monitor_config(s: SelflearnSettings) -> Config:
    return Config(s.auto_rollback_alpha, s.auto_rollback_persist, s.auto_rollback_min_threads,
                  s.auto_rollback_min_users, s.auto_rollback_horizon_h * 3600.0)  # fmt: skip


async def _label(source: TunerParams) -> str:
    """The label MaaS's own parameters give runs (the control when no good version exists)."""
    return (await source.fallback.active()).version


def _tune(host: ExtensionHost, settings: SelflearnSettings) -> TunerParams | None:
    """The Tuner's versions become MaaS's parameters, unless the app was given its own source
    (a test, an embedding application): that choice is kept."""
    if host.param_source is not None:
        return None
    fallback = params_from_settings(host.settings)
    share = settings.auto_rollback_control_share if settings.auto_rollback else 0.0
    source = TunerParams(lambda: host.pool, fallback, settings.params_poll_s, share,
                         settings.auto_rollback_horizon_h * 3600.0)  # fmt: skip
    host.set_param_source(source)
    return source
