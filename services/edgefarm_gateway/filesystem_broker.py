"""The embedded broker: kombu's filesystem transport, with messages that appear whole.

kombu's `_put` creates the message file in the queue folder and then writes it, and its `_get` moves any file
with the queue's name out of the folder and parses it: a worker polling between the two reads an empty file, and
the JSON error kills the worker's main process (seen once in four CI runs). The lock kombu takes is advisory and
`_get` never asks for it. Here a message is written under a name no reader matches, then renamed into place:
`os.replace` is atomic on one filesystem, so a reader sees no file or the whole file.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

# The kombu name of this transport, for Celery's `broker_transport`.
TRANSPORT = f"{__name__}:Transport"


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
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
