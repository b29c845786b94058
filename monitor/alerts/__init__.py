"""Alerts: the outbox rows the detector writes become deliveries, one per routed channel, sent with retries."""
