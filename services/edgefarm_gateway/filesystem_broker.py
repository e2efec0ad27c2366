"""The embedded broker: kombu's filesystem transport, with messages that appear whole.

kombu's `_put` creates the message file in the queue folder and then writes it, and its `_get` moves any file
with the queue's name out of the folder and parses it: a worker polling between the two reads an empty file, and
the JSON error kills the worker's main process (seen once in four CI runs). The lock kombu takes is advisory and
`_get` never asks for it. Here a message is written under a name no reader matches, then renamed into place:
`os.replace` is atomic on one filesystem, so a reader sees no file or the whole file.

A broker folder that goes (a clean-up script, an operator's `rm -r`) is made again: kombu's own transport then
stops the worker ("Unrecoverable error") and fails every send until a restart. The messages in it are gone, but
the jobs are rows in the database, and the reconciler sends the unclaimed ones again.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport.filesystem import Empty
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# The kombu name of this transport, for Celery's `broker_transport`.
TRANSPORT = f"{__name__}:Transport"


# The queue bindings this process declared, by exchange: written again when the control folder was removed, since
# a message for an exchange without its table goes to kombu's dead-letter queue, which nobody reads.
_bindings: dict[str, set[tuple[str, str, str]]] = {}


class Channel(filesystem.Channel):
    def _make_folders(self) -> None:
        for folder in {self.data_folder_in, self.data_folder_out}:
            os.makedirs(folder, exist_ok=True)
        self.control_folder.mkdir(parents=True, exist_ok=True)

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        _bindings.setdefault(exchange, set()).add((routing_key or "", pattern or "", queue or ""))
        self._make_folders()
        super()._queue_bind(exchange, routing_key, pattern, queue)

    def get_table(self, exchange):
        table = super().get_table(exchange)
        if not table and _bindings.get(exchange):
            for binding in _bindings[exchange]:
                self._queue_bind(exchange, *binding)
            table = super().get_table(exchange)
        return table

    def _get(self, queue):
        try:
            return super()._get(queue)
        except FileNotFoundError:
            self._make_folders()
            raise Empty() from None

    def _size(self, queue):
        try:
            return super()._size(queue)
        except FileNotFoundError:
            self._make_folders()
            return 0

    def _purge(self, queue):
        try:
            return super()._purge(queue)
        except FileNotFoundError:
            self._make_folders()
            return 0

    def _put(self, queue, payload, **kwargs):
        if not os.path.isdir(self.data_folder_out):
            self._make_folders()
        # The name kombu's readers sort and match on: "<ms>_<uuid>.<queue>.msg".
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".partial"  # ".<queue>.msg.partial" is not ".<queue>.msg": _get, _size, _purge skip it
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            try:
                os.remove(partial)
            except OSError:
                pass
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
    global_state = filesystem.Transport.global_state  # one broker state per process, as kombu's own
