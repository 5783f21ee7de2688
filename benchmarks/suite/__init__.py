"""Suites: schema, expansion into jobs, cost, job keys, variants, precision."""
