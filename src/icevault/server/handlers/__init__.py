"""One module per resource; each handler takes a routed :class:`~icevault.server.call.Call`."""
