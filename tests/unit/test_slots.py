"""Concurrent runs of one driver share the cluster's task slots: a run whose ranks do not
fit waits for the others, and a bounded wait ends with an error naming who holds them."""
import threading
import time

import pytest

from sparkdl.core.errors import LaunchError
from sparkdl.training.launch.slots import SlotLedger


def test_a_run_waits_for_slots_the_others_hold_then_starts():
    ledger, order = SlotLedger(), []
    with ledger.reserve("run a", 2, total=3, wait_s=5):
        def second():
            with ledger.reserve("run b", 2, total=3, wait_s=5) as waited:
                order.append(("b", waited))

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.3)
        assert not order and ledger.held == {"run a": 2}  # 1 free slot of 3: b waits
        order.append(("a done", 0))
    t.join(5)
    assert [o[0] for o in order] == ["a done", "b"] and order[1][1] >= 0.25
    assert ledger.held == {}


def test_runs_that_fit_together_do_not_wait():
    ledger = SlotLedger()
    with ledger.reserve("run a", 1, total=2, wait_s=1), ledger.reserve("run b", 1, total=2, wait_s=1) as waited:
        assert waited < 0.1 and sum(ledger.held.values()) == 2


def test_a_bounded_wait_names_the_holders_and_the_setting():
    ledger = SlotLedger()
    with ledger.reserve("run a", 2, total=2, wait_s=1):
        with pytest.raises(LaunchError, match=r"run b waited 0s for 1 free task slots of 2; run a \(2 slots\) "
                                              r"still hold them.*train.launch.slot_wait_s"):
            with ledger.reserve("run b", 1, total=2, wait_s=0.2):
                pass
    assert ledger.held == {}
