"""Fixtures for the integration suite. The topology helpers live in
tests/harness/ (shared with bench/), put on the path here."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "harness"))

import pytest  # noqa: E402

from skiff_topo import SKIFF, Topology  # noqa: E402


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
