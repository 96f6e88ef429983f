"""What the worker shows of its disks, and only inside its mounts.

* :mod:`.mounts`: the mount policy every path goes through (no ``..``, no
  symlink escape);
* :mod:`.beneath`: opening a client-named path from the mount root, component
  by component, so that a symlink swapped after a check cannot lead out;
* :mod:`.service`: the ``FS_*`` requests of a data channel (path checks, folder
  listings, video checks);
* :mod:`.videos` and :mod:`.search`: which videos a labels file needs and where
  a missing one may be;
* :mod:`.slp_write`: ``FS_WRITE_SLP``'s remapped copy (a per-peer folder,
  never replacing, within a quota);
* :mod:`.models`: a finished job's models, downloaded by its owner.
"""
