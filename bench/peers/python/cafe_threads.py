"""The Flask-like café: a pool of worker threads (grpc.server with a
ThreadPoolExecutor), each order held by one thread from start to end, which
sleeps through the brew (time.sleep). --baristas is the pool's size, as a
threaded Flask app has one worker per request it can serve at once; the
orders beyond it wait in the executor's queue. This is the seed's
synchronous café: the customer (and the thread) waits at the counter.
"""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
from cafe.v1 import cafe_pb2 as pb
from cafe.v1 import cafe_pb2_grpc

import common


class ThreadCafe(cafe_pb2_grpc.CafeServicer):
    def __init__(self, time_scale):
        self.time_scale = time_scale

    def GetMenu(self, request, context):
        return common.menu_response(self.time_scale)

    def OrderCoffee(self, request, context):
        order, brew = common.take(request, self.time_scale)
        if order is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, brew)
        time.sleep(brew)
        order.status = pb.ORDER_STATUS_READY
        return pb.OrderCoffeeResponse(order=order)

    def OrderWithBuzzer(self, request, context):
        order, brew = common.take(request, self.time_scale)
        if order is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, brew)
        yield common.event(order, pb.ORDER_STATUS_QUEUED)
        # This thread is the barista: the order brews as soon as it runs.
        yield common.event(order, pb.ORDER_STATUS_BREWING)
        time.sleep(brew)
        yield common.event(order, pb.ORDER_STATUS_READY)


def main():
    parser = common.parse_args(__doc__.splitlines()[0], "worker threads (orders served at once)")
    args = parser.parse_args()
    server = grpc.server(ThreadPoolExecutor(max_workers=args.baristas),
                         options=common.server_options(args))
    cafe_pb2_grpc.add_CafeServicer_to_server(ThreadCafe(args.time_scale), server)
    server.add_insecure_port(args.listen)
    server.start()
    stopped = threading.Event()
    common.on_sigterm(stopped.set)
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    server.stop(grace=1).wait()
    # The pool's threads are not daemons: one still asleep in a long brew would
    # keep the interpreter from exiting until it wakes.
    os._exit(0)


if __name__ == "__main__":
    main()
