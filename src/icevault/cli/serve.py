"""``icevault serve``: run the Glacier-compatible server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from icevault.config import ServerSettings, parse_duration, parse_tier_delays


# How much of a request body aiohttp buffers before it stops reading the socket. Its 64 KiB
# default pauses and resumes reading (an epoll change each time) dozens of times per MiB of
# an upload; bodies are handed on in blocks of call.BLOCK anyway.
READ_BUFFER = 1024 * 1024


def _duration(_ctx: click.Context, _param: click.Parameter, value: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=9099, show_default=True, type=int, help="Port to listen on.")
@click.option(
    "--data-dir",
    default="./icevault-data",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Where metadata and archive bytes are kept.",
)
@click.option(
    "--auth",
    type=click.Choice(["off", "sigv4"]),
    default="sigv4",
    show_default=True,
    help="'off' accepts any credentials without checking signatures (local testing only).",
)
@click.option("--region", default="us-east-1", show_default=True, help="Region in ARNs.")
@click.option(
    "--tier-delays",
    default="expedited=0,standard=0,bulk=0",
    show_default=True,
    help="Seconds until a retrieval job completes, per tier (e.g. standard=4h).",
)
@click.option(
    "--inventory-delay", default="0", show_default=True, callback=_duration,
    help="Time until an inventory job completes.",
)
@click.option(
    "--job-expiry", default="24h", show_default=True, callback=_duration,
    help="How long job output stays available after the job completes.",
)
@click.option(
    "--upload-expiry", default="24h", show_default=True, callback=_duration,
    help="How long an idle multipart upload is kept before it is reclaimed.",
)
@click.option(
    "--metadata-url", default=None,
    help="SQLAlchemy URL of the metadata database (default: SQLite in the data directory).",
)
@click.option(
    "--blob-url", default=None,
    help="Keep archive bytes in an S3-compatible object store: "
         "s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]; credentials come from the usual "
         "AWS variables or profile (default: files in the data directory).",
)
@click.option(
    "--notification-url", default=None,
    help="Webhook that receives job-completion notifications (Glacier would publish to SNS).",
)
@click.option("--tls-cert", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Serve HTTPS with this PEM certificate (chain).")
@click.option("--tls-key", default=None, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The certificate's PEM private key.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
def serve(
    host: str,
    port: int,
    data_dir: Path,
    auth: str,
    region: str,
    tier_delays: str,
    inventory_delay: float,
    job_expiry: float,
    upload_expiry: float,
    metadata_url: str | None,
    blob_url: str | None,
    notification_url: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    log_level: str,
) -> None:
    """Run the Glacier-compatible server."""
    from aiohttp import web

    from icevault.server.app import create_app

    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        delays = parse_tier_delays(tier_delays)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tier-delays") from None
    settings = ServerSettings(
        host=host,
        port=port,
        data_dir=data_dir,
        auth=auth,
        region=region,
        tier_delays_s={**ServerSettings().tier_delays_s, **delays},
        inventory_delay_s=inventory_delay,
        job_expiry_s=job_expiry,
        upload_expiry_s=upload_expiry,
        metadata_url=metadata_url,
        blob_url=blob_url,
        notification_url=notification_url,
        tls_cert=tls_cert,
        tls_key=tls_key,
    )
    ssl_context = None
    if (tls_cert is None) != (tls_key is None):
        raise click.BadParameter("--tls-cert and --tls-key go together", param_hint="--tls-cert")
    if tls_cert is not None and tls_key is not None:
        import ssl

        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(tls_cert, tls_key)
    if auth == "off":
        click.echo(
            "WARNING: --auth off: requests are not authenticated; anyone who can reach "
            f"{host}:{port} can read and delete every archive. Use it for local testing only.",
            err=True,
        )
    app = create_app(settings)
    scheme = "https" if ssl_context else "http"
    click.echo(f"icevault serving the Glacier API on {scheme}://{host}:{port} (data in {data_dir})",
               err=True)
    web.run_app(app, host=host, port=port, print=None, access_log=None, shutdown_timeout=10.0,
                handle_signals=True, ssl_context=ssl_context,
                handler_args={"read_bufsize": READ_BUFFER})
