"""The log file and its rotated backups, for everything that writes or reads them.

- :mod:`.names`: backup names (dated or numbered), listing them in rotation order.
- :mod:`.identity`: which file is which once names move on (head and inode), and a
  position in a file (what a shipper's checkpoint saves).
- :mod:`.content`: the one opener; decompressing and cutting a file into lines.
- :mod:`.snapshot`: the set at one instant, backups opened lazily (``logd query``, ``tail``).
- :mod:`.follow`: the one follower across rotations (``logd tail -f``, the shippers).
- :mod:`.bounds`: the time bounds index the file sink writes and ``logd query`` reads.

The rotation thread, the file sink, the readers and the shippers depend on this package,
never on each other.
"""
