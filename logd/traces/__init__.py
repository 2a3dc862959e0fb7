"""Agent traces: recognising trace records, storing them per session, and showing them.

Modules, in the order data flows: :mod:`.shapes` (which records are traces, which
session), :mod:`.names` (session id -> safe file name), :mod:`.store` (per-session
files), :mod:`.sink` (the daemon's writer), :mod:`.model` (records -> events and
spans), :mod:`.analysis` and :mod:`.render` (views), :mod:`.views` (``logd list``,
``logd trace``).
"""
