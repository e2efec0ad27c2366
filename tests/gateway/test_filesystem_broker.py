"""The embedded broker never hands a reader half a message.

kombu's own filesystem transport creates a message file before writing it; a reader polling in between parsed an
empty file and the JSON error killed a Celery worker (1 in ~3000 messages with the writer in another process, as
here). The farm's transport renames whole files into place.
"""

from __future__ import annotations

import multiprocessing
import time

from kombu import Connection
from kombu.transport.filesystem import Empty

from edgefarm_gateway import filesystem_broker

MESSAGES = 3000


def _options(folder: str) -> dict:
    return {"data_folder_in": folder, "data_folder_out": folder, "control_folder": f"{folder}/control"}


def _write(folder: str, count: int) -> None:
    with Connection("filesystem://", transport=filesystem_broker.TRANSPORT, transport_options=_options(folder)) as c:
        for i in range(count):
            c.default_channel._put("compile", {"i": i})


def test_a_poller_racing_a_writer_in_another_process_reads_every_message_whole(tmp_path):
    folder = str(tmp_path)
    writer = multiprocessing.get_context("spawn").Process(target=_write, args=(folder, MESSAGES))
    writer.start()
    received: list[int] = []
    try:
        with Connection("filesystem://", transport=filesystem_broker.TRANSPORT,
                        transport_options=_options(folder)) as connection:
            channel = connection.default_channel
            deadline = time.monotonic() + 120
            while len(received) < MESSAGES and time.monotonic() < deadline:
                try:
                    received.append(channel._get("compile")["i"])  # a partial file would raise JSONDecodeError
                except Empty:
                    pass
    finally:
        writer.join(60)
    assert writer.exitcode == 0
    assert sorted(received) == list(range(MESSAGES))
    assert not list(tmp_path.glob("*.partial"))


def test_the_celery_app_uses_it_for_the_embedded_broker(tmp_path):
    from edgefarm_gateway.queue import make_celery
    from edgefarm_gateway.settings import Settings

    app = make_celery(Settings(data_dir=tmp_path))
    with app.connection_for_write() as connection:
        assert isinstance(connection.transport, filesystem_broker.Transport)


def test_a_removed_broker_folder_is_made_again_and_messages_still_route(tmp_path):
    """Sent through an exchange, as Celery sends: after the folder (with the exchange's table) is removed, the next
    poll and the next send make it again, and the message reaches its queue, not kombu's dead-letter queue."""
    import shutil

    from kombu import Exchange, Queue

    folder = tmp_path / "broker"
    queue = Queue("compile", Exchange("compile", type="direct"), routing_key="compile")
    with Connection("filesystem://", transport=filesystem_broker.TRANSPORT,
                    transport_options=_options(str(folder))) as connection:
        producer = connection.Producer()
        producer.publish({"n": 1}, exchange=queue.exchange, routing_key="compile", declare=[queue])
        channel = connection.default_channel
        assert channel._get("compile")["body"]
        shutil.rmtree(folder)
        try:
            channel._get("compile")
        except Empty:
            pass
        assert folder.is_dir()
        shutil.rmtree(folder)
        producer.publish({"n": 2}, exchange=queue.exchange, routing_key="compile")  # no declare: cached
        assert channel._size("compile") == 1
        assert channel._get("compile")["body"]
