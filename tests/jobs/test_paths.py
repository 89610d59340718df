"""Data and output paths stay inside their directories: no '..', no absolute paths, no links out."""

from __future__ import annotations

import os

import pytest

from app.errors import ApiError
from app.jobs.paths import input_format, resolve_input, resolve_output


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """A project-like working directory with data/ and predictions/, as the spec's example assumes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "batch").mkdir(parents=True)
    (tmp_path / "data" / "batch" / "x.csv").write_text("a\n1\n")
    (tmp_path / "outside.csv").write_text("a\n1\n")
    return tmp_path / "data", tmp_path / "predictions"


def status(call) -> int:
    with pytest.raises(ApiError) as refused:
        call()
    return refused.value.code


def test_the_spec_form_and_the_directory_relative_form_name_the_same_file(dirs):
    data, _ = dirs
    real = (data / "batch" / "x.csv").resolve()
    assert resolve_input(data, "data/batch/x.csv") == real
    assert resolve_input(data, "batch/x.csv") == real


@pytest.mark.parametrize(
    "requested",
    ["/etc/passwd", "../outside.csv", "batch/../../outside.csv", "~/x.csv", "C:/x.csv", "batch\\..\\..\\outside.csv"],
)
def test_inputs_outside_the_directory_are_refused(dirs, requested):
    assert status(lambda: resolve_input(dirs[0], requested)) == 400


def test_symlinks_out_of_the_directory_and_non_files_are_refused(dirs, tmp_path):
    data, _ = dirs
    os.symlink(tmp_path / "outside.csv", data / "link.csv")
    os.symlink(tmp_path, data / "linkdir")
    os.mkdir(data / "dir.csv")
    assert status(lambda: resolve_input(data, "link.csv")) == 400
    assert status(lambda: resolve_input(data, "linkdir/outside.csv")) == 400
    assert status(lambda: resolve_input(data, "dir.csv")) == 400
    assert status(lambda: resolve_input(data, "missing.csv")) == 404
    os.symlink(data / "batch" / "x.csv", data / "inside.csv")  # a link that stays inside is fine
    assert resolve_input(data, "inside.csv") == (data / "batch" / "x.csv").resolve()


def test_input_formats():
    assert input_format("a/b.CSV") == "csv" and input_format("b.parquet") == "parquet"
    assert status(lambda: input_format("b.json")) == 400


def test_outputs_are_created_inside_the_output_directory(dirs):
    _, out = dirs
    path = resolve_output(out, "predictions/results.csv", create=True)
    assert path == out.resolve() / "results.csv" and out.is_dir()
    assert resolve_output(out, "nested/deeper/r.csv", create=True) == out.resolve() / "nested" / "deeper" / "r.csv"
    assert (out / "nested" / "deeper").is_dir()


def test_outputs_outside_or_odd_are_refused(dirs, tmp_path):
    _, out = dirs
    out.mkdir()
    os.symlink(tmp_path, out / "escape")
    (out / "adir.csv").mkdir()
    os.symlink(tmp_path / "outside.csv", out / "link.csv")
    for requested in ("../x.csv", "/tmp/x.csv", "escape/x.csv", "adir.csv", "link.csv", "results.txt"):
        assert status(lambda r=requested: resolve_output(out, r, create=True)) == 400, requested
    assert not (tmp_path / "x.csv").exists()
