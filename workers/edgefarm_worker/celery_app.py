"""The compile worker: `celery -A edgefarm_worker.celery_app worker -Q compile`.

The converter stack is imported once per worker process (at process start), not per job.
"""

from __future__ import annotations

import logging

from celery.signals import worker_process_init

from edgefarm_gateway.queue import make_celery
from edgefarm_gateway.settings import get_settings

settings = get_settings()
app = make_celery(settings)
app.conf.worker_concurrency = settings.worker_concurrency
# A new pool process imports TensorFlow before it reports up; that takes longer than Celery's 4 s default, and
# a parent that kills it for being late would replace it forever after a crash.
app.conf.worker_proc_alive_timeout = 120
# TensorFlow keeps ~25 MB per conversion even after clear_session; a fresh pool process every 50 jobs caps it.
app.conf.worker_max_tasks_per_child = 50
app.autodiscover_tasks(["edgefarm_worker"], related_name="tasks", force=True)


@worker_process_init.connect
def _warm_up(**_) -> None:
    from edgefarm_worker.convert import warm_up

    log = logging.getLogger(__name__)
    log.info("importing the converter stack")
    warm_up()
    log.info("converter stack ready")  # LocalFarm waits for this line: before it, a job would wait for imports
