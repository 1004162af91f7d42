"""Hydra's own launcher test suites (hydra.test_utils.launcher_common_tests) run against
hydra/launcher=stacked: the sweeps Hydra's test apps run (custom resolvers, job names, working
folders, overrides of the sweep's folders) end as under Hydra's basic launcher. Their configs
are not ours, so the stacked launcher runs their jobs one by one, through its own job configs
(sweeps/job_configs.py) and Hydra's run_job."""

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.singleton import Singleton
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite
from hydra.version import VersionBase

from helpers import CONFIGS

# Hydra's test apps give no version_base, so Hydra's run_job changes into each job's folder and
# says it will stop doing so: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Future Hydra versions will no longer change")


@pytest.fixture(autouse=True)
def fresh_hydra():
    """Each suite test sets Hydra up itself, as in a process of its own: other tests of this
    process leave it initialised, with their version_base (its apps expect none given)."""
    state = Singleton.get_state()
    GlobalHydra.instance().clear()
    Singleton._instances.pop(VersionBase, None)  # made again at first use, with none given
    yield
    Singleton.set_state(state)


@pytest.mark.parametrize("launcher_name, overrides", [("stacked", [])])
class TestStackedLauncher(LauncherTestSuite):
    pass


@pytest.mark.slow  # each test runs an app in a process of its own
@pytest.mark.parametrize(
    "task_launcher_cfg, extra_flags",
    [({}, ["-m", "hydra/launcher=stacked", f"hydra.searchpath=[file://{CONFIGS}]"])],
)
class TestStackedLauncherIntegration(IntegrationTestSuite):
    pass
