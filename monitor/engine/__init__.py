"""The running monitor: scheduler, probe runner, runtime wiring, coordinator, baseline capture."""
