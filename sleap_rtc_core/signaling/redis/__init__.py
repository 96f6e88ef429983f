"""Several server processes sharing rooms, peers and routing through Redis.

* :mod:`.config`: how a process joins the others (URL, prefix, timings);
* :mod:`.backend`: the process's Redis side (directory, routing, heartbeats);
* :mod:`.replica`: the other processes' peers as this process sees them (pure);
* :mod:`.held`: frames held for a dead process's peers until they return (pure);
* :mod:`.claims`: credential counts and admin slots decided in Redis (its
  scripts; pure), sent by :mod:`.claims_io`;
* :mod:`.wire`: the frames processes send each other (pure).
"""
