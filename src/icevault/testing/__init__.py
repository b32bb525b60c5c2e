"""Testing Glacier code against a real icevault server.

    from icevault.testing import IcevaultServer, Fault

    with IcevaultServer(tier_delays={"standard": "4h"}) as server:
        glacier = server.client()
        ...
        server.advance_clock(hours=5)
        server.inject(Fault.throttle("GetJobOutput", times=2))

With pytest, the ``icevault_server``, ``icevault_session_server`` and ``glacier_client``
fixtures come from the plugin this package registers (``icevault.testing.plugin``).
"""

from icevault.core.faults import Fault, FaultKind
from icevault.testing.server import IcevaultServer, ServerStartError

__all__ = ["Fault", "FaultKind", "IcevaultServer", "ServerStartError"]
