"""The Check record and the one-screen report."""

from __future__ import annotations

from sleap_rtc_core.doctor.report import Check, Verdict, any_failed, format_report


def test_check_verdicts_lines_and_json() -> None:
    ok = Check("zmq", True, "bound")
    bad = Check("websocket", False, "refused", "start the server")
    skipped = Check("torch", None, "skipped (--skip)")
    assert [c.verdict for c in (ok, bad, skipped)] == [
        Verdict.OK,
        Verdict.FAIL,
        Verdict.SKIP,
    ]
    assert bad.line().startswith("FAIL  websocket")
    assert bad.line().endswith("refused  -> start the server")
    assert "\n" not in bad.line()
    assert bad.to_dict() == {
        "name": "websocket",
        "verdict": "FAIL",
        "ok": False,
        "detail": "refused",
        "advice": "start the server",
    }
    assert any_failed([ok, bad])
    assert not any_failed([ok, skipped])
    assert format_report([ok, bad, skipped]).endswith(
        "1 of 3 checks failed (1 skipped)\n"
    )
    assert format_report([ok]).endswith("all 1 checks passed\n")
