"""PathResolutionDialog: found and missing side by side, resolved to OK."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from sleap_rtc_gui.dialogs.path_resolution import (
    NO_UPLOAD_AREA_HINT,
    SEND_INSTEAD_HINT,
    SHARED_STORAGE_HINT,
    PathResolutionDialog,
)
from tests.fixtures.timing import async_wait_until
from tests.gui.sessions import ScriptedSession, report


def test_suggestions_preselected_and_found_shown_beside(qtbot: QtBot) -> None:
    rep = report(
        present=("/home/me/ok.mp4",),
        missing=("/home/me/a.mp4", "/home/me/b.mp4"),
        suggestions={"/home/me/a.mp4": ("/mnt/data/a.mp4", "/mnt/old/a.mp4")},
    )
    dialog = PathResolutionDialog(rep)
    qtbot.addWidget(dialog)
    assert dialog.table.rowCount() == 3
    assert dialog.table.item(0, 1).text() == "Found"
    assert dialog.worker_path("/home/me/a.mp4") == "/mnt/data/a.mp4"
    assert dialog.worker_path("/home/me/b.mp4") == ""
    assert not dialog.ok_button.isEnabled()  # b is not resolved yet
    assert dialog.hint_label.isHidden()  # not all videos are missing

    answers: list[dict[str, str]] = []
    dialog.resolved.connect(answers.append)
    dialog.set_worker_path("/home/me/b.mp4", "/mnt/data/b.mp4")
    assert dialog.ok_button.isEnabled()
    dialog.ok_button.click()
    assert answers == [
        {"/home/me/a.mp4": "/mnt/data/a.mp4", "/home/me/b.mp4": "/mnt/data/b.mp4"}
    ]


def test_prefix_fix_resolves_all_missing_and_hint_when_all_missing(
    qtbot: QtBot,
) -> None:
    rep = report(missing=("/Volumes/lab/a.mp4", "/Volumes/lab/sub/b.mp4"))
    dialog = PathResolutionDialog(rep)
    qtbot.addWidget(dialog)
    assert not dialog.hint_label.isHidden()
    assert dialog.hint_label.text() == SHARED_STORAGE_HINT
    dialog.prefix_from.setText("/Volumes/lab")
    dialog.prefix_to.setText("/mnt/lab")
    dialog.prefix_button.click()
    assert dialog.mappings() == {
        "/Volumes/lab/a.mp4": "/mnt/lab/a.mp4",
        "/Volumes/lab/sub/b.mp4": "/mnt/lab/sub/b.mp4",
    }
    assert dialog.ok_button.isEnabled()


def test_cancel_answers_cancelled_once(qtbot: QtBot) -> None:
    dialog = PathResolutionDialog(report(missing=("/a.mp4",)))
    qtbot.addWidget(dialog)
    cancelled: list[bool] = []
    dialog.cancelled.connect(lambda: cancelled.append(True))
    dialog.reject()
    dialog.reject()
    assert cancelled == [True]


def test_labels_mode_asks_for_the_worker_path(qtbot: QtBot) -> None:
    rep = report(found=False)
    rep = type(rep)(
        rep.labels_path, False, labels_suggestions=("/mnt/data/labels.slp",)
    )
    dialog = PathResolutionDialog(rep, corrections_left=2)
    qtbot.addWidget(dialog)
    entered: list[str] = []
    dialog.labels_entered.connect(entered.append)
    assert dialog.labels_path() == "/mnt/data/labels.slp"
    dialog.ok_button.click()
    assert entered == ["/mnt/data/labels.slp"]


async def test_browsing_the_worker_mounts_fills_the_selected_row(
    qtbot: QtBot,
) -> None:
    session = ScriptedSession()
    dialog = PathResolutionDialog(
        report(missing=("/home/me/fly.mp4",)), browse=session.list_dir
    )
    qtbot.addWidget(dialog)
    dialog.table.setCurrentCell(0, 0)
    dialog.browse_button.click()
    await async_wait_until(lambda: dialog.browse_list.item(0).text() == "data/")
    dialog.browse_list.itemActivated.emit(dialog.browse_list.item(0))
    await async_wait_until(lambda: dialog.browse_list.count() == 2)  # .. + file
    dialog.browse_list.itemActivated.emit(dialog.browse_list.item(1))
    assert dialog.worker_path("/home/me/fly.mp4") == "/mnt/data/fly.mp4"
    assert dialog.ok_button.isEnabled()
    await dialog.bridge.aclose()


async def test_videos_resolved_in_the_flow_reach_the_job_spec(qtbot: QtBot) -> None:
    from tests.gui.test_presubmit_io import make_dialog

    session = ScriptedSession(
        report(
            missing=("/home/me/a.mp4",), suggestions={"/home/me/a.mp4": ("/w/a.mp4",)}
        )
    )
    dialog = make_dialog(qtbot, session)
    dialog.controller.run("w-one", "lab", dialog.labels_path)
    await async_wait_until(lambda: dialog.controller.path_dialog is not None)
    path_dialog = dialog.controller.path_dialog
    assert path_dialog is not None
    path_dialog.ok_button.click()
    await async_wait_until(lambda: bool(session.submitted))
    assert session.submitted[0]["path_mappings"] == {"/home/me/a.mp4": "/w/a.mp4"}


# ------------------------------------------------------------------ sending instead

LABELS = "/home/me/labels.slp"


def test_the_labels_dialog_offers_to_send_the_file(qtbot: QtBot) -> None:
    dialog = PathResolutionDialog(report(LABELS, found=False), 3, can_upload=True)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.upload_button.isVisible()
    assert dialog.upload_label.text() == SEND_INSTEAD_HINT
    with qtbot.waitSignal(dialog.upload_requested):
        dialog.upload_button.click()
    assert not dialog.isVisible()
    videos = PathResolutionDialog(report(missing=("/home/me/a.mp4",)), can_upload=True)
    qtbot.addWidget(videos)
    assert videos.upload_button.isHidden()


def test_a_slp_may_go_with_its_videos_a_package_only_as_it_is(qtbot: QtBot) -> None:
    dialog = PathResolutionDialog(report(LABELS, found=False), 3, can_upload=True)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.upload_videos_button.isVisible()
    with qtbot.waitSignal(dialog.upload_with_videos_requested):
        dialog.upload_videos_button.click()
    assert not dialog.isVisible()
    package = PathResolutionDialog(
        report("/home/me/p.pkg.slp", found=False), 3, can_upload=True
    )
    qtbot.addWidget(package)
    package.show()
    assert package.upload_button.isVisible()
    assert package.upload_videos_button.isHidden()
    none = PathResolutionDialog(report(LABELS, found=False), 3)
    qtbot.addWidget(none)
    none.show()
    assert none.upload_videos_button.isHidden()


def test_a_worker_without_an_upload_area_is_not_offered_the_file(
    qtbot: QtBot,
) -> None:
    dialog = PathResolutionDialog(report(LABELS, found=False), 3)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.upload_button.isHidden()
    assert dialog.upload_label.isVisible()
    assert dialog.upload_label.text() == NO_UPLOAD_AREA_HINT
    requests: list[object] = []
    dialog.upload_requested.connect(lambda: requests.append(None))
    dialog.upload_button.click()  # hidden, and ignored if clicked anyway
    assert requests == []
    assert dialog.isVisible()
