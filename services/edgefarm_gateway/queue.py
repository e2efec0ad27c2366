"""The Celery app, as both sides see it: the gateway only sends "run job X", workers receive it.

Building it imports no task code, so the gateway stays free of the converter stack. Messages carry job ids
only; the database says what to do. A lost or duplicated message is harmless: the reconciler re-sends what
nobody claimed, and a worker's claim is a conditional update that only one delivery can win.
"""

from __future__ import annotations

import logging

from celery import Celery

from edgefarm.wire import JobType

from edgefarm_gateway import filesystem_broker
from edgefarm_gateway.settings import Settings

log = logging.getLogger(__name__)

COMPILE_TASK = "edgefarm.compile"
REFERENCE_TASK = "edgefarm.reference"
COMPILE_QUEUE = "compile"  # the workers' queue: conversions, and the FP32 reference runs of pipelines
# The job types workers run (the others run on devices), and the task that runs each.
WORKER_TASKS = {JobType.COMPILE.value: COMPILE_TASK, JobType.REFERENCE.value: REFERENCE_TASK}


def make_celery(settings: Settings) -> Celery:
    app = Celery("edgefarm", broker=settings.celery_broker_url)
    transport_options: dict = {}
    if settings.celery_broker_url.startswith("filesystem://"):
        app.conf.broker_transport = filesystem_broker.TRANSPORT
        folder = settings.broker_dir
        folder.mkdir(parents=True, exist_ok=True)
        # The control folder defaults to ./control in the current directory; keep it with the rest.
        transport_options = {"data_folder_in": str(folder), "data_folder_out": str(folder),
                             "control_folder": str(folder / "control"), "polling_interval": 0.2}
    else:
        # Redis re-delivers an unacknowledged message after this long; the reconciler covers crashes sooner.
        transport_options = {"visibility_timeout": 3 * 3600}
        if settings.broker_key_prefix:
            transport_options["global_keyprefix"] = settings.broker_key_prefix
    app.conf.update(
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_acks_late=True,  # a worker that dies mid-conversion leaves the message to be delivered again
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=COMPILE_QUEUE,
        task_serializer="json",
        accept_content=["json"],  # never pickle: messages are only job ids
        worker_hijack_root_logger=False,
    )
    return app


def send(celery: Celery, job_id: str, job_type: str) -> None:
    try:
        celery.send_task(WORKER_TASKS[job_type], args=[job_id], queue=COMPILE_QUEUE, retry=True,
                         retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5})
    except Exception:  # the job row is committed; the reconciler sends it again when the broker is back
        log.exception("could not enqueue %s job %s; the reconciler will retry", job_type, job_id)
