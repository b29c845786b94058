"""Fixtures: one emulator server per test session (faults cleared around every test)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from monitor.config import CanaryConfig, ServiceConfig
from probes.emulator.server import EmulatorServer

__all__ = ["emulator", "openai_service", "canary", "emulator_session"]

TEST_API_KEY = "sk-test-emulator-key-0123456789"


@pytest.fixture(scope="session")
def emulator_session() -> Iterator[EmulatorServer]:
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def emulator(emulator_session: EmulatorServer) -> Iterator[EmulatorServer]:
    """The running emulator with no active faults."""
    emulator_session.faults.clear()
    yield emulator_session
    emulator_session.faults.clear()


@pytest.fixture
def openai_service(emulator: EmulatorServer) -> ServiceConfig:
    return ServiceConfig(
        id="openai-test",
        provider="openai",
        base_url=emulator.base_url("openai"),
        api_key=TEST_API_KEY,
        model="dall-e-3",
        canaries=["still-life"],
        timeout=timedelta(seconds=5),
        allow_private_network=True,
    )


@pytest.fixture
def canary() -> CanaryConfig:
    return CanaryConfig(
        id="still-life",
        prompt="a red apple on a wooden table, soft daylight, photograph",
        size="1024x1024",
        seed=1234,
    )
