"""Entry point of ironflow-ui (group `ironflow`, name `ui`): the dashboard's static files.

The files are public (a browser cannot send the API key when it opens a
page); they hold no data. Everything the pages show comes from the API,
which the page calls with the key the user typed in.
"""

from __future__ import annotations

from ironflow_core import RouteSpec, hookimpl


@hookimpl
def ironflow_register_routes() -> list[RouteSpec]:
    """The dashboard's routes, public because a browser cannot send the API key for a page."""
    from ironflow_ui.routes import ui_routes

    return [RouteSpec(routes=tuple(ui_routes()), public=True,
                      summary="The web dashboard at /ui/")]
