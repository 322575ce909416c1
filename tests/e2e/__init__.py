"""End-to-end tests: a real Prefect server, real work pools, real workers, real CLI."""
