"""bench/history's rules on small hand-made histories: each rule broken once (the run must
fail, naming the rule and the order), and histories that must pass.

    python3 -m unittest discover -s bench -p 'history_test.py'

bench/soak --smoke runs these first, so CI runs them.
"""

import importlib.machinery
import importlib.util
import sys
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
_loader = importlib.machinery.SourceFileLoader(
    "bench_history", str(Path(__file__).resolve().parent / "history"))
_spec = importlib.util.spec_from_loader("bench_history", _loader)
history = importlib.util.module_from_spec(_spec)
_loader.exec_module(history)

CAFES = {"barista-a": "cafe-a", "barista-b": "cafe-b"}


def seen(mono, client, kind, order, status, what="event", code="OK", **more):
    return dict(mono=mono, wall=mono, client=client, kind=kind, what=what, order=order,
                status=status, cafe="127.0.0.1:1", code=code, **more)


def buzzer(order, *statuses, start=0.0, client="buzzer-1", request_id="r1"):
    """A buzzer customer's stream: a ticket, then each status a second apart."""
    events = [seen(start, client, "buzzer", order, statuses[0], ticket=True,
                   request_id=request_id)]
    events += [seen(start + i, client, "buzzer", order, s, request_id=request_id)
               for i, s in enumerate(statuses[1:], 1)]
    return events


def rules(events, store=None):
    return sorted({rule for rule, _, _ in history.check(events, store, CAFES)})


class Passing(unittest.TestCase):
    def test_a_plain_order_followed_to_the_end(self):
        events = buzzer("o1", "QUEUED", "BREWING", "READY")
        self.assertEqual(rules(events, {"o1": dict(status="READY", request_id="r1")}), [])

    def test_a_hand_back_and_a_brew_at_the_other_cafe(self):
        events = [
            seen(1.0, "board-a", "board", "o1", "QUEUED"),
            seen(2.0, "board-a", "board", "o1", "BREWING", barista="barista-a/Ana"),
            seen(9.0, "board-b", "board", "o1", "QUEUED"),
            seen(9.2, "board-a", "board", "o1", "QUEUED"),
            seen(9.1, "board-b", "board", "o1", "BREWING", barista="barista-b/Bo"),
            seen(9.5, "board-a", "board", "o1", "BREWING", barista="barista-b/Bo"),
            seen(10.0, "board-b", "board", "o1", "READY"),
        ]
        self.assertEqual(rules(events), [])

    def test_a_take_over_after_the_lease_with_its_hand_back_unseen(self):
        # Café a went silent brewing o1; once its lease ran out café b took the drink
        # back and brewed it, while no watcher was connected to see the QUEUED between.
        events = [
            seen(1.0, "board-a", "board", "o1", "QUEUED"),
            seen(2.0, "board-a", "board", "o1", "BREWING", barista="barista-a/Ana"),
            seen(7.2, "board-b", "board", "o1", "BREWING", barista="barista-b/Bo"),
            seen(7.3, "board-b", "board", "o1", "READY"),
        ]
        self.assertEqual(rules(events), [])

    def test_a_retry_at_the_other_cafe_names_the_same_order(self):
        events = [seen(1.0, "counter-1", "counter", None, None, what="answer",
                       code="UNAVAILABLE", request_id="r9"),
                  seen(2.0, "counter-1", "counter", "o9", "READY", what="answer",
                       request_id="r9")]
        self.assertEqual(rules(events, {"o9": dict(status="READY", request_id="r9")}), [])

    def test_a_cancel_answered_before_its_buzzer_hears_it(self):
        events = buzzer("o1", "QUEUED", "QUEUED", "CANCELLED") + [
            seen(1.5, "buzzer-1", "cancel", "o1", "CANCELLED", what="answer")]
        self.assertEqual(rules(events), [])

    def test_an_order_the_store_forgot_but_its_customer_saw_end(self):
        self.assertEqual(rules(buzzer("o1", "QUEUED", "READY")), [])


class Failing(unittest.TestCase):
    def test_an_acknowledged_order_never_final(self):
        self.assertEqual(rules(buzzer("o1", "QUEUED", "BREWING")), [1])

    def test_an_order_still_open_in_the_store(self):
        self.assertEqual(rules(buzzer("o1", "QUEUED"), {"o1": dict(status="QUEUED",
                                                                   request_id="r1")}), [1])

    def test_two_ends(self):
        events = buzzer("o1", "QUEUED", "READY") + [
            seen(5.0, "canceller-1", "cancel", "o1", "CANCELLED", what="answer")]
        self.assertIn(1, rules(events))

    def test_the_store_ends_otherwise_than_the_customer_saw(self):
        events = buzzer("o1", "QUEUED", "READY")
        self.assertEqual(rules(events, {"o1": dict(status="FAILED", request_id="r1")}), [1])

    def test_a_status_moving_back(self):
        self.assertIn(2, rules(buzzer("o1", "QUEUED", "BREWING", "READY", "BREWING")))
        self.assertEqual(rules(buzzer("o2", "BREWING", "QUEUED", "READY") +
                               buzzer("o3", "QUEUED", "BREWING", "READY", client="x",
                                      request_id="r3")), [])
        self.assertEqual(rules(buzzer("o4", "BREWING", "QUEUED", "CANCELLED") + [
            seen(9.0, "board-a", "board", "o4", "READY"),
            seen(8.0, "board-a", "board", "o4", "QUEUED")]), [1])

    def test_queued_after_ready_for_one_client(self):
        events = buzzer("o1", "QUEUED", "READY") + [seen(9.0, "buzzer-1", "watch", "o1",
                                                         "QUEUED")]
        self.assertEqual(rules(events), [2])

    def test_two_cafes_brewing_without_a_hand_back(self):
        # Sooner than a lease could have run out (LEASE - HEARTBEAT - LAG = 3 s).
        events = [
            seen(1.0, "board-a", "board", "o1", "QUEUED"),
            seen(2.0, "board-a", "board", "o1", "BREWING", barista="barista-a/Ana"),
            seen(4.5, "board-b", "board", "o1", "BREWING", barista="barista-b/Bo"),
            seen(5.5, "board-b", "board", "o1", "READY"),
        ]
        self.assertEqual(rules(events), [3])

    def test_a_hand_back_seen_long_before_the_first_brew_does_not_count(self):
        events = [
            seen(1.0, "board-a", "board", "o1", "QUEUED"),
            seen(5.0, "board-a", "board", "o1", "BREWING", barista="barista-a/Ana"),
            seen(6.0, "board-b", "board", "o1", "BREWING", barista="barista-b/Bo"),
            seen(7.0, "board-b", "board", "o1", "READY"),
        ]
        self.assertEqual(rules(events), [3])

    def test_one_request_id_two_orders(self):
        events = [seen(1.0, "counter-1", "counter", "o1", "READY", what="answer",
                       request_id="r1"),
                  seen(2.0, "counter-1", "counter", "o2", "READY", what="answer",
                       request_id="r1")]
        self.assertEqual(rules(events), [4])

    def test_the_store_holding_a_second_order_for_a_request_id(self):
        events = [seen(1.0, "counter-1", "counter", "o1", "READY", what="answer",
                       request_id="r1")]
        store = {"o1": dict(status="READY", request_id="r1"),
                 "o2": dict(status="READY", request_id="r1")}
        self.assertEqual(rules(events, store), [4])

    def test_the_report_prints_the_orders_history(self):
        events = buzzer("o1", "QUEUED", "BREWING")
        text = history.report(history.check(events), events, {})
        self.assertIn("rule 1 broken by o1", text)
        self.assertEqual(text.count(" buzzer "), 2)  # both things its customer saw


if __name__ == "__main__":
    unittest.main()
