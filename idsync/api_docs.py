"""Layer: app. The OpenAPI page (/docs, Swagger UI) with its assets served by idsync.

FastAPI's default pages load Swagger UI, ReDoc and a favicon from public CDNs, so on a
network without internet access /docs stays blank. Swagger UI's files here come from the
pinned `fastapi-offline` package (the swagger-ui-dist 5 bundle, shipped in its wheel) and
are served under ASSETS_PREFIX; the page references nothing outside the server.

There is no /redoc: ReDoc's bundle always loads its logo from the vendor's CDN.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_PREFIX = "/docs-assets"
# The files the page loads, as shipped by fastapi-offline.
ASSET_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")


def assets_dir() -> Path:
    """The directory holding ASSET_FILES; fails loudly if the package no longer ships them."""
    directory = Path(str(files("fastapi_offline").joinpath("static")))
    missing = [name for name in ASSET_FILES if not (directory / name).is_file()]
    if missing:
        raise RuntimeError(f"fastapi-offline no longer ships {missing} in {directory}")
    return directory


def install_api_docs(app: FastAPI) -> None:
    """Serve /docs from local assets.

    The app must be built with `docs_url=None, redoc_url=None` (else FastAPI has already
    added its CDN pages at the same paths, and those would match first).
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None, redoc_url=None")
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the app has no OpenAPI schema to show (openapi_url=None)")
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url or f"{DOCS_URL}/oauth2-redirect"
    app.mount(ASSETS_PREFIX, StaticFiles(directory=assets_dir()), name="docs-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
            swagger_js_url=f"{root}{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PREFIX}/favicon.png",
            # No call to the public validator service (validator.swagger.io).
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
