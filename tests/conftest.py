"""Shared fixtures: emulator, PostgreSQL, configs.  Fixture modules live beside this file."""

from tests.fixture_emulator import *  # noqa: F401,F403
from tests.fixture_postgres import *  # noqa: F401,F403
