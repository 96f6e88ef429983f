"""Data-channel messages of the reference's package flow and pipeline markers
(PROTOCOL.md B §4.3).

Reference clients upload a zip with ``PACKAGE_TYPE`` / ``OUTPUT_DIR`` /
``FILE_META``; reference workers report the scripted pipeline with the markers
below. We decode all of them so that such peers are understood (and refused
politely: this project never runs uploaded scripts), and can send the markers
old clients wait for. ``READY``, ``TRAINING_COMPLETE``, ``ERROR``,
``TRANSFER_PROGRESS`` and ``CHUNK`` are defined by the reference but unused.

``TRACK_LOG:{line}`` is framed with a *single* colon, unlike every other type.
In ``TRAIN_JOB_ERROR`` / ``INFERENCE_JOB_ERROR`` the exit code is split off from
the right, so the name may contain ``::``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._channel_args import INT, NAME, TEXT, Arg
from ._channel_base import TRACK_LOG_PREFIX, ChannelMessage, ChannelMessageType

__all__ = [
    "ErrorMsg",
    "InferenceErrorMsg",
    "InferenceJobEndMsg",
    "InferenceJobErrorMsg",
    "InferenceJobStartMsg",
    "InferenceJobsDoneMsg",
    "InferenceStartMsg",
    "OutputDirMsg",
    "PackageTypeMsg",
    "ReadyMsg",
    "TrackLogMsg",
    "TrainJobEndMsg",
    "TrainJobErrorMsg",
    "TrainJobStartMsg",
    "TrainingCompleteMsg",
    "TrainingJobsDoneMsg",
]


@dataclass(frozen=True, slots=True)
class _NameMarker(ChannelMessage):
    """Base of the ``…_JOB_START`` / ``…_JOB_END`` markers: ``TYPE::{name}``."""

    ARGS: ClassVar[tuple[tuple[str, Arg], ...]] = (("name", TEXT),)

    name: str


@dataclass(frozen=True, slots=True)
class _ErrorMarker(ChannelMessage):
    """Base of the ``…_JOB_ERROR`` markers: ``TYPE::{name}::{returncode}``, the
    code split off from the right."""

    ARGS: ClassVar[tuple[tuple[str, Arg], ...]] = (("name", TEXT), ("returncode", INT))
    GREEDY: ClassVar[int] = 0

    name: str
    returncode: int


@dataclass(frozen=True, slots=True)
class PackageTypeMsg(ChannelMessage):
    """``PACKAGE_TYPE::train|track``: what the next uploaded package is for."""

    TYPE = ChannelMessageType.PACKAGE_TYPE
    ARGS = (("package_type", NAME),)

    package_type: str


@dataclass(frozen=True, slots=True)
class OutputDirMsg(ChannelMessage):
    """``OUTPUT_DIR::{dir}``: where the package's results should go."""

    TYPE = ChannelMessageType.OUTPUT_DIR
    ARGS = (("path", TEXT),)

    path: str


@dataclass(frozen=True, slots=True)
class TrainJobStartMsg(_NameMarker):
    """``TRAIN_JOB_START::{name}``."""

    TYPE = ChannelMessageType.TRAIN_JOB_START


@dataclass(frozen=True, slots=True)
class TrainJobEndMsg(_NameMarker):
    """``TRAIN_JOB_END::{name}``."""

    TYPE = ChannelMessageType.TRAIN_JOB_END


@dataclass(frozen=True, slots=True)
class TrainJobErrorMsg(_ErrorMarker):
    """``TRAIN_JOB_ERROR::{name}::{returncode}``."""

    TYPE = ChannelMessageType.TRAIN_JOB_ERROR


@dataclass(frozen=True, slots=True)
class TrainingJobsDoneMsg(ChannelMessage):
    """``TRAINING_JOBS_DONE``."""

    TYPE = ChannelMessageType.TRAINING_JOBS_DONE


@dataclass(frozen=True, slots=True)
class InferenceStartMsg(ChannelMessage):
    """``INFERENCE_START``."""

    TYPE = ChannelMessageType.INFERENCE_START


@dataclass(frozen=True, slots=True)
class InferenceJobStartMsg(_NameMarker):
    """``INFERENCE_JOB_START::{name}``."""

    TYPE = ChannelMessageType.INFERENCE_JOB_START


@dataclass(frozen=True, slots=True)
class InferenceJobEndMsg(_NameMarker):
    """``INFERENCE_JOB_END::{name}``."""

    TYPE = ChannelMessageType.INFERENCE_JOB_END


@dataclass(frozen=True, slots=True)
class InferenceJobErrorMsg(_ErrorMarker):
    """``INFERENCE_JOB_ERROR::{name}::{returncode}``."""

    TYPE = ChannelMessageType.INFERENCE_JOB_ERROR


@dataclass(frozen=True, slots=True)
class InferenceJobsDoneMsg(ChannelMessage):
    """``INFERENCE_JOBS_DONE``."""

    TYPE = ChannelMessageType.INFERENCE_JOBS_DONE


@dataclass(frozen=True, slots=True)
class InferenceErrorMsg(ChannelMessage):
    """``INFERENCE_ERROR::{text}``."""

    TYPE = ChannelMessageType.INFERENCE_ERROR
    ARGS = (("text", TEXT),)

    text: str


@dataclass(frozen=True, slots=True)
class TrackLogMsg(ChannelMessage):
    """``TRACK_LOG:{line}`` (one colon): a line of the legacy track script."""

    TYPE = ChannelMessageType.TRACK_LOG
    ARGS = (("line", TEXT),)

    line: str

    def to_text(self) -> str:
        return f"{TRACK_LOG_PREFIX}{self.line}"


@dataclass(frozen=True, slots=True)
class ReadyMsg(ChannelMessage):
    """``READY``."""

    TYPE = ChannelMessageType.READY


@dataclass(frozen=True, slots=True)
class TrainingCompleteMsg(ChannelMessage):
    """``TRAINING_COMPLETE``."""

    TYPE = ChannelMessageType.TRAINING_COMPLETE


@dataclass(frozen=True, slots=True)
class ErrorMsg(ChannelMessage):
    """``ERROR::{text}``."""

    TYPE = ChannelMessageType.ERROR
    ARGS = (("text", TEXT),)

    text: str
