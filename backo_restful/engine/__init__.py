"""The engine: reads and writes collections, raising typed exceptions.

Each call of an :class:`Engine` builds one :class:`~.core.Operation` holding the
caller's rights and the answer's budget (:mod:`.call`), whose concerns are
mixins, one per module: :mod:`.reading` (every read of a collection and its
expansion), :mod:`.guard` (what the caller may change), :mod:`.changes` (the one
path of every write to the storage), :mod:`.writing` (creates, updates, links)
and :mod:`.deleting` (delete plans and cascades); :mod:`.bulk` adds the calls
that change or delete every match of a filter. :mod:`.options` checks the
options of a read once; :mod:`.transactions` runs a call's work in a
transaction, again where the database allows; :mod:`.default` holds the
module-level default engine.

``auth`` is None for trusted code (no checks at all), else the caller's verified
claims: the engine then enforces the permissions and field rights the model
declares (see :mod:`backo_restful.auth`), the same way on every path.
"""

from __future__ import annotations

from .call import Auth as Auth
from .core import MAX_CREATED_ID as MAX_CREATED_ID
from .core import Engine as Engine
from .default import default_engine as default_engine
from .default import delete as delete
from .default import get as get
from .default import page as page
from .default import patch as patch
from .default import post as post
from .default import put as put
from .default import setup as setup
from .objects import FIND_PAGE_SIZE as FIND_PAGE_SIZE
from .objects import Object as Object
from .objects import Objects as Objects
from .options import DEFAULT_COUNT_LIMIT as DEFAULT_COUNT_LIMIT
from .options import ReadOptions as ReadOptions
from .transactions import RETRY_PAUSE as RETRY_PAUSE
from .transactions import WRITE_ATTEMPTS as WRITE_ATTEMPTS
