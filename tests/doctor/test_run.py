"""All the checks together, in their fixed order."""

from __future__ import annotations

from pathlib import Path

from sleap_rtc_core.doctor.report import any_failed, format_report
from sleap_rtc_core.doctor.run import DoctorOptions, run_checks
from sleap_rtc_core.signaling.service import Service
from tests.fixtures.doctor import by_name
from tests.fixtures.signaling import RoomCreds
from tests.fixtures.timing import scaled


async def test_run_checks_all_green(
    service: Service, room: RoomCreds, tmp_path: Path
) -> None:
    checks = await run_checks(
        DoctorOptions(
            server=service.server.url,
            credentials={"room_id": room.room_id, "token": room.token},
            room_secret="the room's secret",
            mounts=[tmp_path],
            worker=True,
            timeout=scaled(5),
            min_free=0,
            skip=frozenset({"torch", "sleap-nn"}),
        )
    )
    assert [c.name for c in checks] == [
        "python",
        "packages",
        "torch",
        "sleap-nn",
        "websocket",
        "http",
        "credentials",
        "room secret",
        "mount",
        "disk",
        "zmq",
    ]
    assert not any_failed(checks), format_report(checks)


async def test_run_checks_server_down(free_port: int) -> None:
    checks = by_name(
        await run_checks(
            DoctorOptions(
                server=f"ws://127.0.0.1:{free_port}",
                credentials={"room_id": "r", "token": "t"},
                timeout=scaled(5),
                skip=frozenset({"torch", "sleap-nn"}),
            )
        )
    )
    assert checks["websocket"].ok is False
    assert checks["credentials"].ok is None
    assert "unreachable" in checks["credentials"].detail
