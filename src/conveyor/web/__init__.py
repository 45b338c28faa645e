"""conveyor's web UI and JSON API (``pip install 'conveyor[web]'``).

from conveyor.web import create_app, new_token
app = create_app(backend.record_store, token=new_token())   # an ASGI app

``conveyor ui --store URL`` serves it; see the README's "Operating conveyor".
"""

from ._app import LOCAL_HOSTS as LOCAL_HOSTS
from ._app import create_app as create_app
from ._security import is_loopback as is_loopback
from ._security import new_token as new_token

__all__ = ("LOCAL_HOSTS", "create_app", "is_loopback", "new_token")
