"""Loopback emulators of the provider APIs, with injectable faults (``EmulatorServer``)."""
