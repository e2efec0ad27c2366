"""Child processes for native code that may crash: what the worker learns when one dies, from real children."""

from __future__ import annotations

import sys
import textwrap

import pytest
from edgefarm_worker.convert import child

CHILD = '''
import ctypes, sys, time
from edgefarm_worker.convert.child import stage, start

def dereference_null():
    ctypes.string_at(0)

start()
what = sys.argv[1]
stage("warming up")
print("a line the child says", file=sys.stderr)
stage(f"doing {what}")
if what == "segfault":
    dereference_null()
elif what == "exit":
    sys.exit("gave up: the input is wrong")
elif what == "hang":
    time.sleep(60)
print("answer")
'''


@pytest.fixture
def module(tmp_path, monkeypatch):
    (tmp_path / "edgefarm_test_child.py").write_text(textwrap.dedent(CHILD))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", ":".join(p for p in sys.path if p))
    return "edgefarm_test_child"


def test_a_segfault_names_the_signal_the_stage_and_the_function(module):
    with pytest.raises(child.ChildFailed) as caught:
        child.run(module, ["segfault"], timeout=60)
    failure = caught.value
    assert failure.signalled and failure.how == "killed by SIGSEGV"
    assert failure.stage == "doing segfault"
    assert failure.crashed_in is not None and failure.crashed_in.endswith(":string_at")  # innermost Python frame
    assert failure.said == ["a line the child says"]  # the stack dump and stage lines are not what it said


def test_an_exit_keeps_what_the_child_said(module):
    with pytest.raises(child.ChildFailed) as caught:
        child.run(module, ["exit"], timeout=60)
    assert (caught.value.how, caught.value.signalled) == ("exit status 1", False)
    assert caught.value.said[-1] == "gave up: the input is wrong" and caught.value.crashed_in is None


def test_a_child_that_hangs_is_stopped_at_its_timeout(module):
    with pytest.raises(child.ChildFailed) as caught:
        child.run(module, ["hang"], timeout=3)
    assert caught.value.how == "no answer after 3 s" and caught.value.stage == "doing hang"


def test_an_answer_is_its_stdout(module):
    assert child.run(module, ["nothing"], timeout=60).strip() == "answer"
