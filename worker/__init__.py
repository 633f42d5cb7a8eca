"""worker: the Celery app, the job task that runs optfb, and the single-host launcher.

`worker.celery_app` is the app (`celery -A worker.celery_app worker`), `worker.tasks` the one task
`optfb.run_job`, `worker.runner` the code that drives one job, `worker.sweep` the re-enqueueing of
lost and stale jobs, `worker.local` what `make run` starts.
"""
