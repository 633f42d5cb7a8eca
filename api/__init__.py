"""api: the HTTP service (FastAPI). It validates specs, writes jobs, enqueues them, reads results.

It imports `store` and `optfb.spec` only, never torch or the worker.
"""
