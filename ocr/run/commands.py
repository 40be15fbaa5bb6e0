"""`formc worker` and `formc status`: the cluster's commands (cli.py adds them to `formc`); what they run is
ocr/run/cluster.py, imported inside each so that `formc` starts without loading Celery."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--broker", required=True, help="redis://host:6379/0 or amqp://... (where `formc batch --engine celery` sends)")
@click.option("--db", "db_url", required=True, help="the results database: postgresql+psycopg://... (or sqlite:///...)")
@click.option("--store", "store_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="the shared photo store (the same path as the submitter's --store)")
@click.option("--concurrency", type=click.IntRange(1), default=None, help="reading processes (default: all cores)")
@click.option("--redelivery-after", type=click.FloatRange(1), default=600.0, show_default=True,
              help="seconds after which a Redis broker gives a dead worker's submission to another worker")
@click.option("--name", help="this worker's name in `formc status` (default: formc-<pid>@<host>, unique per process)")
def worker(broker: str, db_url: str, store_dir: Path, concurrency: int | None, redelivery_after: float,
           name: str | None) -> None:
    """Read submissions sent by `formc batch --engine celery`, saving each result in --db."""
    import os

    from ocr.run.cluster import make_app

    app = make_app(broker, db_url, store_dir, redelivery_after)
    # Workers sharing a name (Celery's default is the host's) answer `status` as one.
    app.worker_main(["worker", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--hostname",
                     name or f"formc-{os.getpid()}@%h", "--concurrency", str(concurrency or os.cpu_count() or 1)])


@click.command()
@click.option("--broker", required=True, help="redis://host:6379/0 or amqp://... (the workers' broker)")
@click.option("--db", "db_url", help="also count the stored results by status")
def status(broker: str, db_url: str | None) -> None:
    """Cluster health: the workers that answer and what they read, submissions waiting; exit 1 when no worker answers."""
    from ocr.run.cluster import cluster_status

    state = cluster_status(broker, db_url)
    click.echo(f"workers answering: {len(state.workers)}")
    for name, reading in state.workers.items():
        click.echo(f"  {name}  reading {reading}")
    click.echo(f"submissions waiting in the queue: {state.queued}")
    if db_url is not None:
        click.echo("results: " + (", ".join(f"{k} {v}" for k, v in sorted(state.results.items())) or "none yet"))
    if not state.workers:
        raise SystemExit(1)
