"""What a registration asks every server process before it is admitted.

With several processes (Redis), two bounds cannot be decided by one process's
replica of the registry, which lags the others by a moment: a credential's
peer count in a room (``max_peers_per_credential``) and the room's mesh-admin
slot. Two registrations racing on two processes would both be admitted. So the
router asks a replicating backend first (:class:`Claim`), which decides
atomically for all processes and answers with a :class:`Verdict`; the router
then finishes the registration by that verdict (:meth:`Router.claimed`).

Pure data: the router and the Redis backend both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ...protocol import signaling as sig
    from .router import IdentityLike, Session

__all__ = ["Claim", "Verdict"]


@dataclass(frozen=True, slots=True)
class Claim:
    """A registration waiting for the backend's verdict.

    Attributes:
        session: The connection registering.
        message: Its ``register``.
        ident: Who its credentials say it is.
        room_id: The room it joins.
        peer_id: The peer id it will have (generated ones included).
        credential_id: The credential whose peers are counted.
        limit: Peers that credential may hold in the room (this process's
            ``max_peers_per_credential``).
        admin: Whether it asks for the admin slot.
    """

    session: Session
    message: sig.Register
    ident: IdentityLike
    room_id: str
    peer_id: str
    credential_id: str | None
    limit: int
    admin: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """The backend's answer to a :class:`Claim`, true for every process.

    Attributes:
        admitted: The credential had room for this peer (its entry is now
            counted); False: refuse with ``ROOM_FULL``.
        held: Peers the credential holds in the room, this one excluded.
        admin: The admin slot's holder after the claim (the claimant when it
            got it); ``None`` when the claim did not ask for it.
    """

    admitted: bool
    held: int
    admin: str | None = None
