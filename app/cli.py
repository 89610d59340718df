"""Flask CLI commands: ``flask --app app create-demo-models`` (also ``modelserve create-demo-models``)."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from app.services import services


def register_commands(app: Flask) -> None:
    app.cli.add_command(create_demo_models_command)
    app.cli.add_command(create_api_key_command)
    app.cli.add_command(trust_model_command)


@click.command("create-demo-models")
@with_appcontext
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
    registry = services().registry
    default_dir = registry.model_dir.resolve() == target.resolve()
    for filename, outcome in create_demo_models(target, force=force):
        click.echo(f"{outcome:8s} {target / filename}")
        if default_dir:  # we trained it here: trust it for unpickling
            registry.trust(filename, actor="create-demo-models")
    from app.demo_models import create_demo_data

    data_target = data_directory or Path(current_app.config["MODELSERVE"]["jobs"]["data_directory"])
    for filename, outcome in create_demo_data(data_target, force=force):
        click.echo(f"{outcome:8s} {data_target / filename}")


@click.command("create-api-key")
@with_appcontext
@click.argument("name")
@click.option(
    "--role",
    "roles",
    multiple=True,
    type=click.Choice(["predict", "admin"]),
    default=["predict"],
    show_default=True,
    help="Repeat for several roles.",
)
@click.option(
    "--rate-limit",
    "rate_limits",
    multiple=True,
    metavar="GROUP=RATE",
    help="The key's own limit for a group, replacing security.rate_limits for this key, "
    "e.g. predict=100000/minute. Repeat for several groups.",
)
def create_api_key_command(name: str, roles: tuple[str, ...], rate_limits: tuple[str, ...]) -> None:
    """Create an API key: print the secret once, and the line to add to security.api_keys.

    The entry (name, sha256, roles, limits; never the secret) goes into the audit trail.
    """
    import json

    from app.security.auth import new_api_key
    from app.validation import is_valid_name

    if not is_valid_name(name):
        raise click.BadParameter("1-64 letters, digits, '_' or '-'.", param_hint="NAME")
    tier = _tier(rate_limits)
    secret, digest = new_api_key()
    entry: dict[str, object] = {"name": name, "sha256": digest, "roles": sorted(set(roles))}
    if tier:
        entry["rate_limits"] = tier
    click.echo(f"API key for {name} (shown once, store it now): {secret}")
    click.echo("Add to security.api_keys in config/security.yaml:")
    click.echo(f"  - {json.dumps(entry)}")
    details = {key: value for key, value in entry.items() if key != "name"}
    services().registry.audit_trail.record("cli", "create_api_key", name, "success", details)


def _tier(options: tuple[str, ...]) -> dict[str, str]:
    """``--rate-limit GROUP=RATE`` options as a key's ``rate_limits``, validated as the configuration is."""
    from marshmallow import ValidationError

    from app.security.settings import TIERS

    tier: dict[str, str] = {}
    for option in options:
        group, sep, rate = option.partition("=")
        if not sep or group.strip() in tier:
            raise click.BadParameter(f"{option!r}: give each group once, as GROUP=RATE.", param_hint="--rate-limit")
        tier[group.strip()] = rate.strip()
    try:
        return TIERS.load(tier)
    except ValidationError as exc:
        raise click.BadParameter(
            "; ".join(f"{group}: {' '.join(errors)}" for group, errors in exc.normalized_messages().items()),
            param_hint="--rate-limit",
        ) from None


@click.command("trust-model")
@with_appcontext
@click.argument("model_path")
def trust_model_command(model_path: str) -> None:
    """Trust a pickle/joblib/.py file in the model directory for loading (by its current sha256)."""
    registry = services().registry
    file, digest, added = registry.trust(model_path, actor="cli")
    click.echo(f"{'trusted' if added else 'already trusted'} {file} sha256={digest}")


def main() -> None:
    """The ``modelserve`` console script: the Flask CLI bound to our factory."""
    from app import create_app

    FlaskGroup(create_app=lambda: create_app()).main()
