"""Shipping: forward every record of logd's JSON files to remote collectors, at least once.

``[[logging.ship]]`` targets (syslog, otlp, http, loki, elasticsearch, nats) each get a
:class:`~.shipper.Shipper` thread that tails the files with its own checkpoint.
"""

from logd.ship.manager import ShipManager, shipped_file
from logd.ship.shipper import Shipper

__all__ = ["ShipManager", "Shipper", "shipped_file"]
