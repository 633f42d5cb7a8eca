"""The FastAPI application: `create_app(settings)` and the module-level `app` that servers load."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from api import problems
from api.queue import JobQueue
from api.routes import jobs, meta, results
from optfb.spec import ExperimentSpec
from store.config import Settings, get_settings
from store.db import make_engine, make_sessionmaker

DESCRIPTION = """Learn the feedback matrices B of feedback alignment by differentiating through
unrolled training. Submit an experiment spec, poll its status, download the learned matrices."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """An app for `settings` (default: the environment's). Migrations are not run here: the
    launcher or `python -m store.db` does that; requests answer 503 until they have run."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = make_engine(settings.resolved_database_url)
        app.state.sessionmaker = make_sessionmaker(engine)
        app.state.queue = JobQueue(settings)
        try:
            yield
        finally:
            app.state.queue.close()
            engine.dispose()

    app = FastAPI(title="optfb", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.token_owners = settings.token_owners()
    problems.install(app)
    for module in (jobs, results, meta):
        app.include_router(module.router)

    def openapi() -> dict[str, Any]:
        # POST /v1/jobs reads its body itself (to bound its size); publish the spec's schema.
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
            )
            spec_schema = ExperimentSpec.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(spec_schema.pop("$defs", {}))
            components["ExperimentSpec"] = spec_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


app = create_app()
