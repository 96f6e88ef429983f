"""Signaling messages: one frozen dataclass per ``type`` (PROTOCOL.md A.1, B §1.2-1.3).

Every message travels as one JSON object per WebSocket text frame and names its kind
in ``type``. Field names are the reference server's, so existing Signaling API v2
peers keep working. Messages relayed verbatim (``offer``, ``answer``, ``candidate``,
a worker ``error`` with a ``target``, and the dashboard relay messages) keep unknown
keys in ``extra``; every other message rejects unknown keys.

Directions are documented per class; the codec does not enforce them (the server
answers a message it does not accept from peers with ``UNKNOWN_MESSAGE_TYPE``).

Extension (ours): ``register``, ``discover_peers`` and ``update_metadata`` may
carry a ``request_id``; our server echoes it in the reply or in the ``error`` it
causes, so a client can tell which request an error answers. Reference servers
ignore it, and our client then falls back to matching replies in order.

Extension (ours): ``register`` may carry ``subscribe`` (``{"roles": [...]}``),
the roles whose room announcements the peer wants; see :class:`Register`. A
``subscribe`` message changes them later (:class:`Subscribe`, answered by
:class:`Subscribed`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from ._schema import JSONObject, WireObject, extra_field, wire_field

__all__ = [
    "AdminConflict",
    "Answer",
    "Candidate",
    "DiscoverPeers",
    "EncryptedRelay",
    "ErrorMessage",
    "FsCheckVideos",
    "FsCheckVideosResponse",
    "FsListReq",
    "FsListRes",
    "IceCandidate",
    "JobAssigned",
    "JobCancelRelay",
    "JobProgressRelay",
    "JobStatusRelay",
    "KeyExchange",
    "KeyExchangeResponse",
    "MeshAnswer",
    "MeshConnect",
    "MeshOffer",
    "Message",
    "MessageType",
    "MetadataUpdated",
    "Offer",
    "PeerJoined",
    "PeerLeft",
    "PeerList",
    "PeerMessage",
    "PeerUpdated",
    "Ping",
    "Pong",
    "Quit",
    "Register",
    "RegisteredAuth",
    "Subscribe",
    "Subscribed",
    "UpdateMetadata",
    "UseWorkerPath",
    "WorkerJoined",
    "WorkerPathError",
    "WorkerPathOk",
    "subscription_roles",
]


class MessageType(StrEnum):
    """Every signaling ``type`` we know."""

    # peer -> server
    REGISTER = "register"
    DISCOVER_PEERS = "discover_peers"
    UPDATE_METADATA = "update_metadata"
    PEER_MESSAGE = "peer_message"
    OFFER = "offer"
    ANSWER = "answer"
    CANDIDATE = "candidate"
    MESH_CONNECT = "mesh_connect"
    MESH_ANSWER = "mesh_answer"
    ICE_CANDIDATE = "ice_candidate"
    PONG = "pong"
    SUBSCRIBE = "subscribe"
    # server -> peer
    REGISTERED_AUTH = "registered_auth"
    ADMIN_CONFLICT = "admin_conflict"
    PEER_LIST = "peer_list"
    METADATA_UPDATED = "metadata_updated"
    SUBSCRIBED = "subscribed"
    MESH_OFFER = "mesh_offer"
    ERROR = "error"
    PING = "ping"
    PEER_JOINED = "peer_joined"
    PEER_LEFT = "peer_left"
    PEER_UPDATED = "peer_updated"
    WORKER_JOINED = "worker_joined"
    QUIT = "quit"
    # dashboard relay, server -> worker (B §1.9)
    KEY_EXCHANGE = "key_exchange"
    ENCRYPTED_RELAY = "encrypted_relay"
    FS_LIST_REQ = "fs_list_req"
    USE_WORKER_PATH = "use_worker_path"
    FS_CHECK_VIDEOS = "fs_check_videos"
    JOB_ASSIGNED = "job_assigned"
    JOB_CANCEL = "job_cancel"
    # dashboard relay, worker -> server
    KEY_EXCHANGE_RESPONSE = "key_exchange_response"
    FS_LIST_RES = "fs_list_res"
    WORKER_PATH_OK = "worker_path_ok"
    WORKER_PATH_ERROR = "worker_path_error"
    FS_CHECK_VIDEOS_RESPONSE = "fs_check_videos_response"
    JOB_STATUS = "job_status"
    JOB_PROGRESS = "job_progress"


@dataclass(frozen=True, slots=True)
class Message(WireObject):
    """Base of every signaling message; ``TYPE`` names its wire ``type``."""

    TYPE: ClassVar[MessageType]
    RESERVED_KEYS: ClassVar[frozenset[str]] = frozenset({"type"})

    def to_dict(self) -> JSONObject:
        """The JSON object to send, ``type`` first."""
        out: JSONObject = {"type": self.TYPE.value}
        out.update(WireObject.to_dict(self))
        return out


# --- peer → server


@dataclass(frozen=True, slots=True)
class Register(Message):
    """Join a room (peer → server). One of the credential fields is required.

    Attributes:
        peer_id: The id the peer chose; optional on the key/JWT paths.
        role: ``worker``, ``client`` or free text.
        metadata: ``{"tags": [...], "properties": {...}}`` by convention.
        is_admin: Claims the room's mesh-admin slot.
        api_key: Worker key ``slp_...`` or account key ``slp_acct_...``.
        jwt: A sleap-rtc RS256 JWT (needs ``room_id``).
        id_token: Legacy Cognito token (not supported; refused with a reason).
        room_id: The room to join (JWT, account key and room-token paths).
        token: The room token (password).
        subscribe: Which room announcements (``peer_joined``/``peer_left``/
            ``peer_updated``) to receive, and which peers ``registered_auth``
            lists: ``{"roles": ["worker"]}`` (``"*"`` for every role, ``[]`` for
            none). Absent, the peer is a legacy one and hears about every peer
            (extension; reference servers ignore the key).
    """

    TYPE = MessageType.REGISTER
    peer_id: str | None = None
    role: str = "peer"
    metadata: JSONObject = wire_field(default_factory=dict)
    is_admin: bool = False
    api_key: str | None = None
    jwt: str | None = None
    id_token: str | None = None
    room_id: str | None = None
    token: str | None = None
    request_id: str | None = None
    subscribe: JSONObject | None = None

    def __post_init__(self) -> None:
        if self.subscribe is not None:
            subscription_roles(self.subscribe)  # raises ValueError when malformed

    @property
    def subscribed_roles(self) -> frozenset[str] | None:
        """The roles whose announcements this peer wants (``"*"``: all);
        ``None`` for a legacy peer that sent no ``subscribe`` (it gets all)."""
        if self.subscribe is None:
            return None
        return subscription_roles(self.subscribe)


MAX_SUBSCRIBED_ROLES = 32
"""Roles one ``subscribe`` may name."""


def subscription_roles(subscribe: JSONObject) -> frozenset[str]:
    """The roles of a ``subscribe`` object (``{"roles": [str, ...]}``).

    Raises:
        ValueError: another key, or ``roles`` not a short list of non-empty
            strings.
    """
    unknown = subscribe.keys() - {"roles"}
    if unknown:
        raise ValueError(f"subscribe: unknown key {sorted(unknown)[0]!r}")
    roles = subscribe.get("roles", [])
    if (
        not isinstance(roles, list)
        or len(roles) > MAX_SUBSCRIBED_ROLES
        or not all(isinstance(r, str) and r for r in roles)
    ):
        raise ValueError(
            "subscribe.roles must be a list of at most "
            f"{MAX_SUBSCRIBED_ROLES} non-empty strings"
        )
    return frozenset(roles)


@dataclass(frozen=True, slots=True)
class Subscribe(Message):
    """Change which room announcements the sender hears (peer → server;
    extension): ``roles`` as in ``register``'s ``subscribe`` (``["*"]``: every
    role, ``[]``: none). Answered by :class:`Subscribed`."""

    TYPE = MessageType.SUBSCRIBE
    roles: list[str] = wire_field()
    request_id: str | None = None

    def __post_init__(self) -> None:
        subscription_roles({"roles": self.roles})  # raises ValueError when malformed


@dataclass(frozen=True, slots=True)
class DiscoverPeers(Message):
    """Find peers of the sender's room that match ``filters`` (peer → server)."""

    TYPE = MessageType.DISCOVER_PEERS
    from_peer_id: str | None = None
    filters: JSONObject = wire_field(default_factory=dict)
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class UpdateMetadata(Message):
    """Deep-merge ``metadata`` into the sender's stored metadata (peer → server)."""

    TYPE = MessageType.UPDATE_METADATA
    metadata: JSONObject = wire_field(non_empty=True)
    peer_id: str | None = None
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class PeerMessage(Message):
    """An application message for one peer of the same room (both directions).

    The server delivers it with the same shape; ``payload`` is never inspected.
    """

    TYPE = MessageType.PEER_MESSAGE
    from_peer_id: str = wire_field(non_empty=True)
    to_peer_id: str = wire_field(non_empty=True)
    payload: Any = wire_field(non_empty=True)


@dataclass(frozen=True, slots=True)
class Offer(Message):
    """WebRTC offer, relayed verbatim to ``target`` (extra keys such as ``role``
    survive)."""

    TYPE = MessageType.OFFER
    target: str = wire_field(non_empty=True)
    sdp: str = wire_field()
    sender: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class Answer(Message):
    """WebRTC answer, relayed verbatim to ``target``."""

    TYPE = MessageType.ANSWER
    target: str = wire_field(non_empty=True)
    sdp: str = wire_field()
    sender: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class Candidate(Message):
    """Trickle ICE candidate, relayed verbatim to ``target``."""

    TYPE = MessageType.CANDIDATE
    target: str = wire_field(non_empty=True)
    candidate: Any = None
    sender: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class MeshConnect(Message):
    """Worker-mesh offer (peer → server); delivered as :class:`MeshOffer`."""

    TYPE = MessageType.MESH_CONNECT
    target_peer_id: str = wire_field(non_empty=True)
    offer: JSONObject = wire_field()
    from_peer_id: str | None = None


@dataclass(frozen=True, slots=True)
class MeshAnswer(Message):
    """Worker-mesh answer. Sent with ``target_peer_id``, delivered without it."""

    TYPE = MessageType.MESH_ANSWER
    answer: JSONObject = wire_field()
    from_peer_id: str | None = None
    target_peer_id: str | None = None


@dataclass(frozen=True, slots=True)
class IceCandidate(Message):
    """Worker-mesh ICE candidate. Sent with ``target_peer_id``, delivered without."""

    TYPE = MessageType.ICE_CANDIDATE
    candidate: JSONObject = wire_field()
    from_peer_id: str | None = None
    target_peer_id: str | None = None


@dataclass(frozen=True, slots=True)
class Pong(Message):
    """A peer's answer to :class:`Ping` (optional; proves liveness)."""

    TYPE = MessageType.PONG


# --- server → peer


@dataclass(frozen=True, slots=True)
class RegisteredAuth(Message):
    """Successful ``register`` (server → peer).

    Attributes:
        peer_list: Other peers of the room (the registrant excluded).
        peer_metadata: Their public metadata (server-owned ``_`` keys stripped).
        ice_servers: ``RTCIceServer`` kwargs (``urls``, ``username``, ``credential``).
    """

    TYPE = MessageType.REGISTERED_AUTH
    room_id: str
    peer_id: str
    token: str | None = wire_field(default=None, keep_null=True)
    admin_peer_id: str | None = wire_field(default=None, keep_null=True)
    peer_list: list[str] = wire_field(default_factory=list)
    peer_metadata: JSONObject = wire_field(default_factory=dict)
    ice_servers: list[Any] = wire_field(default_factory=list)
    mesh_ice_servers: list[Any] = wire_field(default_factory=list)
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class AdminConflict(Message):
    """Sent before ``registered_auth`` when the admin slot is taken."""

    TYPE = MessageType.ADMIN_CONFLICT
    room_id: str
    current_admin: str


@dataclass(frozen=True, slots=True)
class PeerList(Message):
    """Reply to ``discover_peers``: ``peers`` is ``[{peer_id, role, metadata,
    connected_at}]``."""

    TYPE = MessageType.PEER_LIST
    to_peer_id: str
    peers: list[JSONObject] = wire_field(default_factory=list)
    count: int = 0
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class MetadataUpdated(Message):
    """Reply to ``update_metadata`` with the stored (merged) metadata."""

    TYPE = MessageType.METADATA_UPDATED
    peer_id: str
    metadata: JSONObject
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class Subscribed(Message):
    """Reply to ``subscribe`` (server → peer): the roles now heard, and a
    snapshot of the room's peers of those roles, as ``registered_auth`` lists
    them; announcements from then on are relative to it."""

    TYPE = MessageType.SUBSCRIBED
    roles: list[str]
    peer_list: list[str]
    peer_metadata: JSONObject
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class MeshOffer(Message):
    """A relayed ``mesh_connect`` (server → target)."""

    TYPE = MessageType.MESH_OFFER
    from_peer_id: str
    offer: JSONObject


@dataclass(frozen=True, slots=True)
class ErrorMessage(Message):
    """An error (server → peer), or a worker's error for a ``target`` (relayed).

    Server errors carry ``code`` and ``message``; ``register`` failures also
    ``reason`` (reference clients read either). A relayed error carries the
    verified ``sender`` (stamped by our server, as on offers and answers).
    """

    TYPE = MessageType.ERROR
    code: str | None = None
    message: str | None = None
    reason: str | None = None
    target: str | None = None
    request_id: str | None = None
    sender: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class Ping(Message):
    """Application heartbeat the server sends every ping interval."""

    TYPE = MessageType.PING


@dataclass(frozen=True, slots=True)
class PeerJoined(Message):
    """A peer registered in the room (extension; reference peers ignore it)."""

    TYPE = MessageType.PEER_JOINED
    peer_id: str
    role: str = "peer"
    metadata: JSONObject = wire_field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PeerLeft(Message):
    """A peer left the room (extension)."""

    TYPE = MessageType.PEER_LEFT
    peer_id: str


@dataclass(frozen=True, slots=True)
class PeerUpdated(Message):
    """A peer's public metadata changed (extension)."""

    TYPE = MessageType.PEER_UPDATED
    peer_id: str
    metadata: JSONObject = wire_field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerJoined(Message):
    """Optional notice to workers that another worker joined (reference)."""

    TYPE = MessageType.WORKER_JOINED
    peer_id: str


@dataclass(frozen=True, slots=True)
class Quit(Message):
    """Legacy: understood by peers, never sent by the server."""

    TYPE = MessageType.QUIT


# --- dashboard relay


@dataclass(frozen=True, slots=True)
class KeyExchange(Message):
    """Relay E2E key exchange request (server → worker)."""

    TYPE = MessageType.KEY_EXCHANGE
    session_id: str
    public_key: str
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class KeyExchangeResponse(Message):
    """Relay E2E key exchange answer (worker → server)."""

    TYPE = MessageType.KEY_EXCHANGE_RESPONSE
    session_id: str
    public_key: str
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class EncryptedRelay(Message):
    """An AES-GCM envelope of a relay message (both directions)."""

    TYPE = MessageType.ENCRYPTED_RELAY
    session_id: str
    nonce: str
    ciphertext: str
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsListReq(Message):
    """Plaintext relay directory listing request (server → worker)."""

    TYPE = MessageType.FS_LIST_REQ
    path: str
    req_id: str | None = None
    offset: int = 0
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsListRes(Message):
    """Relay directory listing answer (worker → server)."""

    TYPE = MessageType.FS_LIST_RES
    req_id: str | None = None
    path: str | None = None
    entries: list[Any] | None = None
    total_count: int | None = None
    has_more: bool | None = None
    error: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class UseWorkerPath(Message):
    """Relay path check request (server → worker)."""

    TYPE = MessageType.USE_WORKER_PATH
    path: str
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class WorkerPathOk(Message):
    """Relay path check answer (worker → server)."""

    TYPE = MessageType.WORKER_PATH_OK
    path: str
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class WorkerPathError(Message):
    """Relay path check failure (worker → server)."""

    TYPE = MessageType.WORKER_PATH_ERROR
    error: str
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsCheckVideos(Message):
    """Relay video check request (server → worker)."""

    TYPE = MessageType.FS_CHECK_VIDEOS
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class FsCheckVideosResponse(Message):
    """Relay video check answer (worker → server)."""

    TYPE = MessageType.FS_CHECK_VIDEOS_RESPONSE
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobAssigned(Message):
    """Relay job submission (server → worker)."""

    TYPE = MessageType.JOB_ASSIGNED
    job_id: str
    config: JSONObject
    submitted_by: str | None = None
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobCancelRelay(Message):
    """Relay job stop/cancel (server → worker); ``mode`` is cancel or stop."""

    TYPE = MessageType.JOB_CANCEL
    job_id: str
    mode: str = "cancel"
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobStatusRelay(Message):
    """Relay job status (worker → server)."""

    TYPE = MessageType.JOB_STATUS
    job_id: str
    status: str
    extra: JSONObject = extra_field()


@dataclass(frozen=True, slots=True)
class JobProgressRelay(Message):
    """Relay job progress (worker → server): train_begin, epoch_end, train_end."""

    TYPE = MessageType.JOB_PROGRESS
    job_id: str
    event: str
    extra: JSONObject = extra_field()
