"""`pyblob doctor`: check a deployment from the outside and say what is wrong and how to fix it."""

from __future__ import annotations

import click

from ..doctor import Doctor, Endpoint, Finding


@click.command()
@click.option("--endpoint", required=True, help="The URL clients use, e.g. https://files.example.org.")
@click.option("--access-key", default="", help="An S3 access key id (the S3 checks are skipped without it).")
@click.option(
    "--secret-key", default="", envvar="PYBLOB_DOCTOR_SECRET_KEY", help="Its secret key [env PYBLOB_DOCTOR_SECRET_KEY]."
)
@click.option(
    "--token",
    default="",
    envvar="PYBLOB_DOCTOR_TOKEN",
    help="An API token of the same user, for short links [env PYBLOB_DOCTOR_TOKEN].",
)
@click.option("--domain", default="", help="PYBLOB_DOMAIN of the server, to check virtual-hosted-style requests.")
@click.option("--region", default="us-east-1", show_default=True, help="Region to sign for.")
def doctor(endpoint: str, access_key: str, secret_key: str, token: str, domain: str, region: str) -> None:
    """Check a running deployment as its clients use it: health, clock, TLS, SigV4, path-style and
    virtual-hosted requests, presigned URLs, aws-chunked and multipart uploads, CORS, short links.

    Creates a bucket `pyblob-doctor-<random>` and removes it at the end. Exits 1 if a check failed.
    """
    try:
        target = Endpoint(endpoint, access_key, secret_key, region)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--endpoint") from exc

    def report(finding: Finding) -> None:
        for line in finding.lines():
            click.echo(line)

    findings = Doctor(target, token, domain).run(report)
    failed = [f for f in findings if f.ok is False]
    skipped = [f for f in findings if f.ok is None]
    click.echo(f"\n{len(findings) - len(failed) - len(skipped)} passed, {len(failed)} failed, {len(skipped)} skipped")
    if failed:
        raise SystemExit(1)
