import os

import pytest

from skiff_topo import SKIFF, Topology


def pytest_configure(config):
    if os.geteuid() != 0:
        raise pytest.UsageError("skiff integration tests need root (CAP_NET_ADMIN, CAP_BPF)")
    if not os.path.exists(SKIFF):
        raise pytest.UsageError(f"{SKIFF} is not built (set SKIFF_BIN_DIR or build first)")


@pytest.fixture
def topo():
    t = Topology()
    try:
        yield t
    finally:
        t.close()


@pytest.fixture
def node(topo):
    return topo.node()
