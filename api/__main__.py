"""`python -m api`: serve the API with uvicorn on the configured host and port."""

from __future__ import annotations

import uvicorn

from store.config import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run("api.app:app", host=settings.host, port=settings.port, proxy_headers=True)


if __name__ == "__main__":
    main()
