"""bench/recorder.py: customers and board watchers who write down everything they see, for
bench/history to check. bench/soak starts it with bench/.venv's python (grpcio and the
cafe.v1 code bench/run generates in bench/.venv/gen).

    recorder.py --cafe 127.0.0.1:50051 [--cafe …] --out events.jsonl --seconds 60 \
        --counter 10 --buzzer 10 --cancellers 2 --watchers 1

Who they are (each a coroutine of one asyncio loop, on one channel per café):

  - counter customers: OrderCoffee with a fresh request_id; after UNAVAILABLE or a cut
    call they try again with the same request_id, at the next café, until they have an
    answer; then order again;
  - buzzer customers: OrderWithBuzzer with a request_id; when the stream is cut they
    re-attach with WatchOrder (at the next café) until the order is final, or, with no
    ticket yet, order again with the same request_id;
  - cancellers: a buzzer customer who cancels with the ticket's claim token at once, then
    follows the order to its end;
  - board watchers: WatchBoard at each café, started again whenever it ends.

Every answer, stream message and stream end is one JSON line: client, kind (counter,
buzzer, watch, cancel, board, get), what (answer, event, end), mono and wall time, café,
order, request_id, status, barista, ticket (the buzzer's first message), the call's
gRPC code and, for an error, its message. After --seconds nobody orders again; the open orders are followed to their end
(GetOrder for any whose stream never said), for at most --follow-limit seconds. SIGTERM
ends the ordering early.
"""

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / ".venv" / "gen"))

import grpc  # noqa: E402
from cafe.v1 import cafe_pb2 as pb  # noqa: E402
from cafe.v1 import cafe_pb2_grpc as rpc  # noqa: E402

STATUS = {1: "QUEUED", 2: "BREWING", 3: "READY", 4: "CANCELLED", 5: "FAILED"}
FINAL = {"READY", "CANCELLED", "FAILED"}
# Worth trying again: the café is away, restarting, or its store is not writable.
TRANSIENT = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.CANCELLED, grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL,
             grpc.StatusCode.RESOURCE_EXHAUSTED}
CHANNEL_OPTIONS = [("grpc.enable_retries", 0), ("grpc.initial_reconnect_backoff_ms", 200),
                   ("grpc.min_reconnect_backoff_ms", 200),
                   ("grpc.max_reconnect_backoff_ms", 1000)]


class Recorder:
    def __init__(self, args):
        self.cafes = args.cafe
        self.stubs = []  # made in run(): a grpc.aio channel belongs to the running loop
        self.out = open(args.out, "w", buffering=1 << 20)
        self.ordering = True
        self.follow_until = None
        self.args = args
        self.open_orders = {}  # order id -> request_id, acknowledged and not seen final
        self.counts = dict(events=0, acknowledged=0, retries=0)

    def write(self, client, kind, what, cafe, order=None, code="OK", request_id=None,
              ticket=False, error=None):
        """One line of the history."""
        line = dict(client=client, kind=kind, what=what, mono=round(time.monotonic(), 4),
                    wall=round(time.time(), 4), cafe=self.cafes[cafe],
                    order=order.id if order is not None and order.id else None,
                    status=STATUS.get(order.status) if order is not None else None,
                    barista=order.barista or None if order is not None else None,
                    request_id=request_id or None, code=code)
        if ticket:
            line["ticket"] = True
        if error is not None:
            line["code"] = error.code().name
            line["message"] = error.details()
        self.out.write(json.dumps(line, separators=(",", ":")) + "\n")
        self.counts["events"] += 1

    def following(self):
        return self.follow_until is None or time.monotonic() < self.follow_until

    async def pause(self, attempt):
        self.counts["retries"] += 1
        await asyncio.sleep(min(0.1 * 2 ** attempt, 1.0))

    # -------------------------------------------------------- customers

    async def counter(self, client, first):
        cafe = first
        while self.ordering:
            request_id = uuid.uuid4().hex
            request = pb.OrderRequest(customer="hist-counter", drink="latte",
                                      request_id=request_id)
            attempt = 0
            while self.following():
                try:
                    answer = await self.stubs[cafe].OrderCoffee(request, timeout=120)
                    self.write(client, "counter", "answer", cafe, answer.order,
                               request_id=request_id)
                    break
                except grpc.aio.AioRpcError as error:
                    self.write(client, "counter", "answer", cafe, error=error,
                               request_id=request_id)
                    if error.code() not in TRANSIENT:
                        break
                cafe = (cafe + 1) % len(self.stubs)
                await self.pause(attempt)
                attempt += 1
            cafe = (cafe + 1) % len(self.stubs)

    async def buzzer(self, client, first, cancel=False):
        cafe = first
        while self.ordering:
            await self.one_buzzer(client, cafe, uuid.uuid4().hex, cancel)
            cafe = (cafe + 1) % len(self.stubs)

    async def one_buzzer(self, client, cafe, request_id, cancel):
        """One order with a buzzer, followed to its end."""
        request = pb.OrderRequest(customer="hist-cancel" if cancel else "hist-buzzer",
                                  drink="latte", request_id=request_id)
        order_id, status, attempt, cancelled = None, None, 0, False
        while self.following() and status not in FINAL:
            if order_id is None:
                call, kind = self.stubs[cafe].OrderWithBuzzer(request, timeout=300), "buzzer"
            else:
                call, kind = self.stubs[cafe].WatchOrder(
                    pb.WatchOrderRequest(order_id=order_id), timeout=300), "watch"
            try:
                async for message in call:
                    ticket = bool(message.claim_token)
                    self.write(client, kind, "event", cafe, message.order,
                               request_id=request_id, ticket=ticket and kind == "buzzer")
                    order_id, status = message.order.id, STATUS.get(message.order.status)
                    if ticket and kind == "buzzer":
                        self.counts["acknowledged"] += 1
                        self.open_orders[order_id] = request_id
                    if cancel and ticket and not cancelled:
                        cancelled = True
                        asyncio.ensure_future(self.cancel(client, cafe, order_id,
                                                          message.claim_token, request_id))
                self.write(client, kind, "end", cafe, request_id=request_id)
                if status in FINAL:
                    break
            except grpc.aio.AioRpcError as error:
                self.write(client, kind, "end", cafe, error=error,
                           request_id=request_id)
                if error.code() == grpc.StatusCode.NOT_FOUND and order_id is not None:
                    break  # forgotten by a café's retention: GetOrder at the end says
            cafe = (cafe + 1) % len(self.stubs)
            await self.pause(attempt)
            attempt += 1
        if status in FINAL:
            self.open_orders.pop(order_id, None)

    async def cancel(self, client, cafe, order_id, claim_token, request_id):
        request = pb.CancelOrderRequest(order_id=order_id, claim_token=claim_token)
        for attempt in range(10):
            try:
                answer = await self.stubs[cafe].CancelOrder(request, timeout=30)
                self.write(client, "cancel", "answer", cafe, answer, request_id=request_id)
                return
            except grpc.aio.AioRpcError as error:
                self.write(client, "cancel", "answer", cafe, error=error,
                           request_id=request_id)
                if error.code() not in TRANSIENT:
                    return
            cafe = (cafe + 1) % len(self.stubs)
            await self.pause(attempt)

    async def watcher(self, client, cafe):
        attempt = 0
        while self.ordering or self.following():
            try:
                async for message in self.stubs[cafe].WatchBoard(pb.WatchBoardRequest()):
                    self.write(client, "board", "event", cafe, message.order)
                    attempt = 0
                self.write(client, "board", "end", cafe)
            except grpc.aio.AioRpcError as error:
                self.write(client, "board", "end", cafe, code=error.code().name)
            await self.pause(attempt)
            attempt += 1

    async def settle(self):
        """Asks about every acknowledged order no stream saw end (GetOrder), until each is
        final or the follow limit passes."""
        cafe = 0
        while self.open_orders and self.following():
            for order_id, request_id in list(self.open_orders.items()):
                try:
                    order = await self.stubs[cafe].GetOrder(
                        pb.GetOrderRequest(order_id=order_id), timeout=10)
                    self.write("settle", "get", "answer", cafe, order, request_id=request_id)
                    if STATUS.get(order.status) in FINAL:
                        del self.open_orders[order_id]
                except grpc.aio.AioRpcError as error:
                    self.write("settle", "get", "answer", cafe, error=error,
                               request_id=request_id)
                cafe = (cafe + 1) % len(self.stubs)
            await asyncio.sleep(0.5)

    async def run(self):
        a = self.args
        self.stubs = [rpc.CafeStub(grpc.aio.insecure_channel(c, options=CHANNEL_OPTIONS))
                      for c in self.cafes]
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        n = len(self.stubs)
        watchers = [asyncio.ensure_future(self.watcher(f"board-{c}.{i}", c))
                    for c in range(n) for i in range(a.watchers)]
        await asyncio.sleep(0.5)  # the boards first, so they see the first orders placed
        customers = [asyncio.ensure_future(self.counter(f"counter-{i}", i % n))
                     for i in range(a.counter)]
        customers += [asyncio.ensure_future(self.buzzer(f"buzzer-{i}", i % n))
                      for i in range(a.buzzer)]
        customers += [asyncio.ensure_future(self.buzzer(f"canceller-{i}", i % n, cancel=True))
                      for i in range(a.cancellers)]
        try:
            await asyncio.wait_for(stop.wait(), a.seconds)
        except asyncio.TimeoutError:
            pass
        self.ordering = False
        self.follow_until = time.monotonic() + a.follow_limit
        await asyncio.wait(customers, timeout=a.follow_limit)
        await self.settle()
        # The boards see the last changes a moment later than the customers.
        await asyncio.sleep(1.0)
        self.follow_until = 0
        for task in watchers + customers:
            task.cancel()
        for outcome in await asyncio.gather(*watchers, *customers, return_exceptions=True):
            if isinstance(outcome, Exception):  # a bug of the recorder's, not the café's
                raise outcome
        self.out.close()
        print(json.dumps(dict(self.counts, unsettled=len(self.open_orders))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cafe", action="append", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--follow-limit", type=float, default=60.0)
    parser.add_argument("--counter", type=int, default=10)
    parser.add_argument("--buzzer", type=int, default=10)
    parser.add_argument("--cancellers", type=int, default=2)
    parser.add_argument("--watchers", type=int, default=1, help="board watchers per café")
    args = parser.parse_args()
    asyncio.run(Recorder(args).run())


if __name__ == "__main__":
    main()
