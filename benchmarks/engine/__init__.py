"""Running jobs: runner, records, hooks, stages, transfer scoring, dry run."""
