"""Mount the Manager on the app (called by selflearn.extension with the pieces it built)."""

from __future__ import annotations

from maas.host import ExtensionHost
from selflearn.emulator.runs import EmulatorRuns
from selflearn.manager import api
from selflearn.manager.cycles import Manager
from selflearn.manager.settings import ManagerSettings
from selflearn.paramsource import TunerParams
from selflearn.settings import SelflearnSettings
from selflearn.teacher.experiment import Experiments


def mount(
    host: ExtensionHost,
    settings: SelflearnSettings,
    emulator: EmulatorRuns,
    experiments: Experiments,
    source: TunerParams | None,
) -> Manager:
    """Routes, the recovery loop (and optional schedule) as a supervised task; the Manager is
    app.state.selflearn_manager (tests may replace its settings before the app starts)."""
    manager = Manager(
        host,
        emulator,
        experiments,
        ManagerSettings(),
        source.invalidate if source else (lambda: None),
        sensor_timeout_s=settings.experiment_sensor_timeout_s,
    )
    host.add_router(api.router)
    host.app.state.selflearn_manager = manager
    host.add_task("selflearn-manager", manager.run_forever)
    host.add_health("selflearn", manager.health)
    return manager
