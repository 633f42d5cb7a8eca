"""store: the one place that knows the database — settings, engine and sessions, models, migrations.

`store.jobs` holds what the API reads and writes; `store.runs` holds the conditional updates
a worker makes while it runs a job.
"""
