"""/docs: the OpenAPI document in Swagger UI, every file served by genkeep itself.

The Swagger UI script and stylesheet come from the `fastapi-offline` package (installed with genkeep, pinned in
pyproject.toml), not from a CDN: the docs work offline, the version is the one installed, and the page's
Content-Security-Policy can allow this server's own scripts only. The start-up call lives in static/docs.js rather
than in an inline script for the same reason.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"

PAGE = f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>genkeep API</title>
  <link rel="icon" href="/static/icons/favicon.svg" type="image/svg+xml">
  <link rel="stylesheet" href="{ASSETS_PATH}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui" data-openapi-url="/openapi.json"></div>
  <script src="{ASSETS_PATH}/swagger-ui-bundle.js"></script>
  <script src="/static/docs.js"></script>
</body>
</html>
"""


def install(app: FastAPI) -> None:
    """Serve /docs and its assets (the app is made with docs_url=None and redoc_url=None)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(PAGE, headers={"Cache-Control": "no-cache"})
