"""Shipping: forward every record of logd's JSON files to remote collectors, at least once.

``[[logging.ship]]`` targets (syslog, otlp, http, loki, elasticsearch, nats) each get a
:class:`~.shipper.Shipper` thread that tails the files with its own checkpoint; the
daemon runs them through :class:`~.manager.ShipManager`.
"""
