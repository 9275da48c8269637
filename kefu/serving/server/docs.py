"""`/docs` served from the `swagger-ui-bundle-v2` package's files: no CDN, works offline.

FastAPI's default page loads Swagger UI from a CDN and shows a blank page on an intranet
without internet access; the same page is rendered here with asset URLs under `/docs/assets`,
which serve the pinned package's copy of Swagger UI. ReDoc (CDN only) is not offered.
The assets answer as every other path does (`DocsAssets`): a path that names no file, one with a
trailing slash included, is the JSON 404 (Starlette's static files served `swagger-ui.css/` as
`swagger-ui.css` and refused any other method with 405 even where no file was), and files are
always sent whole: Starlette answers a malformed or unsatisfiable `Range` with plain text (400,
416), outside kefu's JSON errors, and a browser loading Swagger UI never asks for part of a file.
"""

from __future__ import annotations

import os

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send
from swagger_ui_bundle import swagger_ui_path

from kefu.serving.server.head_routes import get_route

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
# the files the page loads, the only ones served: the package also holds Swagger's demo page
# (index.html, which loads an example API from the internet), other builds and source maps
SCRIPT, STYLE, ICON = "swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"


def install_docs(app: FastAPI) -> None:
    """Add `/docs` and its assets to an app created with `docs_url=None, redoc_url=None`."""
    assets = DocsAssets(str(swagger_ui_path), (SCRIPT, STYLE, ICON))
    app.mount(ASSETS_PATH, assets, name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @get_route(app.router, DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{ASSETS_PATH}/{SCRIPT}",
            swagger_css_url=f"{ASSETS_PATH}/{STYLE}",
            swagger_favicon_url=f"{ASSETS_PATH}/{ICON}",
            swagger_ui_parameters={"persistAuthorization": True},
        )


class DocsAssets:
    """The named files of one flat directory, each at its name and nowhere else (a 404 for any
    other path, before the method is looked at), sent whole: `Range` is ignored and not offered
    (`Accept-Ranges`)."""

    def __init__(self, directory: str, names: tuple[str, ...]):
        self.files = StaticFiles(directory=directory)
        present = {entry.name for entry in os.scandir(directory) if entry.is_file()}
        self.names = frozenset(name for name in names if name in present)

    def has_file(self, scope: Scope) -> bool:
        """Whether the path of `scope`, as mounted, names one of the files."""
        return scope["path"].removeprefix(scope["root_path"]).removeprefix("/") in self.names

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.files(scope, receive, send)
            return
        if not self.has_file(scope):
            raise HTTPException(404)  # the one 404 handler words it (error_responses.py)
        headers = [(name, value) for name, value in scope["headers"] if name not in _RANGE_HEADERS]

        async def send_whole(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name.lower() != b"accept-ranges"
                ]
            await send(message)

        await self.files({**scope, "headers": headers}, receive, send_whole)


_RANGE_HEADERS = (b"range", b"if-range")
