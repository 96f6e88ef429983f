"""A channel's jobs read only the uploads it proved it knows (real files in an area)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sleap_rtc_core.errors import PathNotAllowed
from sleap_rtc_core.worker.files.mounts import MountPolicy
from sleap_rtc_core.worker.files.upload_policy import UploadGrants, UploadJobPolicy
from sleap_rtc_core.worker.files.uploads import UploadArea
from tests.fixtures.uploads import sha, upload


def test_jobs_see_only_granted_uploads(area: UploadArea, tmp_path: Path) -> None:
    data = os.urandom(100)
    stored = upload(area, "alice", data)
    base = MountPolicy([str(tmp_path / "mount")]).hiding(area.root)
    grants = UploadGrants()
    policy = UploadJobPolicy(base, area, grants, "bob")
    with pytest.raises(PathNotAllowed, match="not an upload of this connection"):
        policy.resolve(str(stored))
    grants.add(sha(data))  # bob asked with the hash
    assert policy.resolve(str(stored)) == stored
    assert policy.models_dir_for(str(stored)) == area.root / "models" / "sleap-rtc-bob"
    # Nothing else of the area, and never alice's run folders.
    for other in ("partial", "models/sleap-rtc-alice/run", "sha256"):
        with pytest.raises(PathNotAllowed):
            policy.resolve(str(area.root / other))
    assert policy.resolve(str(area.root / "models/sleap-rtc-bob/run"))


def test_grants_are_by_content_whatever_the_case() -> None:
    grants = UploadGrants()
    grants.add("AB" * 32)
    assert "ab" * 32 in grants
    assert "AB" * 32 in grants
    assert 7 not in grants
    assert list(grants) == ["ab" * 32]
    assert len(grants) == 1
