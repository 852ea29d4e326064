"""The built-in views: importing this package registers each projection.

Each module owns its tables, a :class:`~partnerledger.projection.Projection`
that fills them from the log, and the queries that read them.
"""

from . import (
    ledger,  # noqa: F401
    pipeline,  # noqa: F401
    scorecards,  # noqa: F401
    standings,  # noqa: F401
    trail,  # noqa: F401
)
