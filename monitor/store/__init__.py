"""Storage: engine and sessions, models, results with rollups, spool, migrations runner, reference profiles."""
