"""Flask CLI commands: ``flask --app app create-demo-models`` (also ``modelserve create-demo-models``)."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_demo_models_command)


@click.command("create-demo-models")
@click.option(
    "--directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the models (default: models.model_directory from the config).",
)
@click.option(
    "--data-directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the demo batch file batch/large_dataset.csv (default: jobs.data_directory).",
)
@click.option("--force", is_flag=True, help="Retrain and overwrite models that already exist.")
def create_demo_models_command(directory: Path | None, data_directory: Path | None, force: bool) -> None:
    """Train the iris demo models (sklearn default + XGBoost + the spec's examples) if missing."""
    from app.demo_models import create_demo_models

    target = directory or Path(current_app.config["MODELSERVE"]["models"]["model_directory"])
    for filename, outcome in create_demo_models(target, force=force):
        click.echo(f"{outcome:8s} {target / filename}")
    from app.demo_models import create_demo_data

    data_target = data_directory or Path(current_app.config["MODELSERVE"]["jobs"]["data_directory"])
    for filename, outcome in create_demo_data(data_target, force=force):
        click.echo(f"{outcome:8s} {data_target / filename}")


def main() -> None:
    """The ``modelserve`` console script: the Flask CLI bound to our factory."""
    from app import create_app

    FlaskGroup(create_app=lambda: create_app()).main()
