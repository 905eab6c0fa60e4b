"""`serac-serve`: an OpenAI-compatible HTTP server in front of any saved editor, with an
authenticated, durable edit API and an operator page. An app built on the core; the core
never imports it.

    from serac.server import ServerSettings, create_app
    app = create_app(editor, ServerSettings(editor_path=folder, token=token))
"""

from serac.server.app import create_app
from serac.server.settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
