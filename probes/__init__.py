"""Probe adapters (one module per provider), the registry and the provider emulators."""
