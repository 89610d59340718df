"""Model files and job files obey one confinement rule: the same hostile paths get the same answers.

Each row runs against every caller of :mod:`app.confined_paths` that reads a
file (``model_path``, ``data_path``) and, where the row applies to a file to
be written, against ``output_path``. A refusal is a 400 naming the caller's
field; an acceptable path with no file behind it is a 404.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from app.errors import ApiError, ModelPathError, NotFound
from app.jobs.errors import JobPathError
from app.jobs.paths import resolve_input, resolve_output
from app.model_files import resolve_model_path


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``project/files`` with a good file and every kind of trap, and a secret outside; the cwd is ``project``."""
    files = tmp_path / "project" / "files"
    files.mkdir(parents=True)
    (files / "good.csv").write_text("a\n1\n")
    (tmp_path / "secret.csv").write_text("a\n1\n")
    (files / "out.csv").symlink_to(tmp_path / "secret.csv")
    (files / "gone-out.csv").symlink_to(tmp_path / "nothing-here.csv")
    (files / "updir").symlink_to(tmp_path, target_is_directory=True)
    (files / "loop1.csv").symlink_to(files / "loop2.csv")
    (files / "loop2.csv").symlink_to(files / "loop1.csv")
    (files / "loopdir").symlink_to(files / "loopdir2")
    (files / "loopdir2").symlink_to(files / "loopdir")
    (files / "dir.csv").mkdir()
    (files / "null.csv").symlink_to("/dev/null")
    os.mkfifo(files / "pipe.csv")
    (files / "inside.csv").symlink_to(files / "good.csv")
    monkeypatch.chdir(tmp_path / "project")
    return files


#: field -> (the caller, the error class its refusals raise)
READERS: dict[str, tuple[Callable[[Path, str], Path], type[ApiError]]] = {
    "model_path": (resolve_model_path, ModelPathError),
    "data_path": (resolve_input, JobPathError),
}
WRITER = ("output_path", lambda root, requested: resolve_output(root, requested, create=True), JobPathError)


def refusal(call: Callable[[], Path], error: type[ApiError], field: str) -> str:
    """Run ``call``, expect a 400 of ``error`` naming ``field``; return its message."""
    with pytest.raises(error) as refused:
        call()
    assert refused.value.code == 400
    assert refused.value.description.split()[0].rstrip(":") == field  # "model_path must ...", "data_path: must ..."
    if isinstance(refused.value, JobPathError):
        assert list(refused.value.data["errors"]["json"]) == [field]
    return refused.value.description


#: (id, requested, a phrase of the refusal, whether it applies to a file to write as well); ``{root}`` is the directory.
HOSTILE = [
    ("nul", "x\x00.csv", "NUL byte", True),
    ("nul-spec-form", "files/x\x00.csv", "NUL byte", True),
    ("newline", "x\n.csv", "control character (U+000A)", True),
    ("delete", "e\x7f0.csv", "control character (U+007F)", True),  # kept by werkzeug's ASCII download name
    ("c1-control", "\x9fx.csv", "control character (U+009F)", True),
    ("absolute", "/etc/passwd", "relative path", True),
    ("absolute-inside-the-directory", "{root}/good.csv", "relative path", True),
    ("backslash-root", "\\secret.csv", "relative path", True),
    ("dotdot", "../secret.csv", "'..'", True),
    ("dotdot-spec-form", "files/../../secret.csv", "'..'", True),
    ("dotdot-backslash", "..\\secret.csv", "'..'", True),
    ("home", "~/secret.csv", "relative path", True),
    ("home-of-user", "~root/secret.csv", "relative path", True),
    ("drive", "C:secret.csv", "relative path", True),
    ("drive-root", "C:/secret.csv", "relative path", True),
    ("empty", "", "relative path", True),
    ("dot", ".", "relative path", True),
    ("symlink-out", "out.csv", "outside", False),
    ("symlink-out-spec-form", "files/out.csv", "outside", False),
    ("dangling-symlink-out", "gone-out.csv", "outside", False),
    ("symlinked-directory-out", "updir/secret.csv", "outside", True),
    ("symlink-loop", "loop1.csv", "loop", False),
    ("symlink-loop-directory", "loopdir/x.csv", "loop", True),
    ("directory", "dir.csv", "regular file", False),
    ("device-via-symlink", "null.csv", "outside", False),
    ("fifo", "pipe.csv", "regular file", False),
]


def hostile(writing: bool = False) -> list[object]:
    return [pytest.param(r, p, id=i) for i, r, p, both in HOSTILE if both or not writing]


@pytest.mark.parametrize("field", sorted(READERS))
@pytest.mark.parametrize(("requested", "phrase"), hostile())
def test_hostile_paths_are_refused_when_reading(root, field, requested, phrase):
    resolve, error = READERS[field]
    assert phrase in refusal(lambda: resolve(root, requested.format(root=root)), error, field)


@pytest.mark.parametrize(("requested", "phrase"), hostile(writing=True))
def test_hostile_paths_are_refused_when_writing(root, tmp_path, requested, phrase):
    field, resolve, error = WRITER
    assert phrase in refusal(lambda: resolve(root, requested.format(root=root)), error, field)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "secret.csv"]  # nothing created outside


@pytest.mark.parametrize(
    ("requested", "phrase"),
    [
        pytest.param("out.csv", "symbolic link", id="symlink-out"),
        pytest.param("inside.csv", "symbolic link", id="symlink-inside"),
        pytest.param("null.csv", "symbolic link", id="device-via-symlink"),
        pytest.param("gone-out.csv", "symbolic link", id="dangling-symlink"),
        pytest.param("loop1.csv", "symbolic link", id="symlink-loop"),
        pytest.param("dir.csv", "directory", id="directory"),
        pytest.param("pipe.csv", "device", id="fifo"),
    ],
)
def test_an_existing_target_must_be_a_plain_file_when_writing(root, requested, phrase):
    field, resolve, error = WRITER
    assert phrase in refusal(lambda: resolve(root, requested), error, field)


@pytest.mark.parametrize("field", sorted(READERS))
@pytest.mark.parametrize("requested", ["missing.csv", "files/missing.csv", "nowhere/missing.csv"])
def test_an_acceptable_path_with_no_file_is_not_found(root, field, requested):
    resolve, _ = READERS[field]
    with pytest.raises(NotFound) as missing:
        resolve(root, requested)
    assert missing.value.code == 404


@pytest.mark.parametrize("field", sorted(READERS))
@pytest.mark.parametrize(
    "requested",
    [
        pytest.param("good.csv", id="directory-relative"),
        pytest.param("files/good.csv", id="spec-form"),
        pytest.param("files\\good.csv", id="spec-form-backslash"),
        pytest.param("inside.csv", id="symlink-inside"),
    ],
)
def test_the_same_paths_are_accepted_when_reading(root, field, requested):
    resolve, _ = READERS[field]
    assert resolve(root, requested) == (root / "good.csv").resolve()
    assert resolve(Path("files"), requested) == (root / "good.csv").resolve()


@pytest.mark.parametrize("field", sorted(READERS))
def test_the_spec_form_works_through_a_symlinked_directory(root, tmp_path, field):
    resolve, _ = READERS[field]
    (tmp_path / "project" / "linked").symlink_to(root, target_is_directory=True)
    assert resolve(Path("linked"), "linked/good.csv") == (root / "good.csv").resolve()
    written = resolve_output(Path("linked"), "linked/new.csv", create=True)
    assert written == root.resolve() / "new.csv"


def test_the_working_directory_reading_is_tried_first_when_it_lies_inside(root):
    (root / "files").mkdir()
    (root / "files" / "good.csv").write_text("nested\n")
    for resolve, _ in READERS.values():
        assert resolve(root, "files/good.csv") == (root / "good.csv").resolve()
    assert resolve_output(root, "files/new.csv") == root.resolve() / "new.csv"
