"""The FastAPI-like café: one thread, one asyncio event loop, every order a
coroutine (grpc.aio). Waiting for a drink is `await asyncio.sleep(...)`: the
loop serves everyone else meanwhile, which is the seed's asynchronous café.

--baristas limits how many drinks brew at once (an asyncio.Semaphore);
--blocking brews with time.sleep() instead, the anti-pattern that stalls
the whole loop, as the Rust café's --brew-mode blocking does its workers.
"""

import asyncio
import signal
import time

import grpc
from cafe.v1 import cafe_pb2 as pb
from cafe.v1 import cafe_pb2_grpc

import common


class AioCafe(cafe_pb2_grpc.CafeServicer):
    def __init__(self, time_scale, baristas, blocking):
        self.time_scale = time_scale
        self.baristas = asyncio.Semaphore(baristas)
        self.blocking = blocking

    async def brew(self, seconds):
        if self.blocking:
            time.sleep(seconds)  # ANTI-PATTERN on purpose: blocks the event loop.
        else:
            await asyncio.sleep(seconds)

    async def GetMenu(self, request, context):
        return common.menu_response(self.time_scale)

    async def OrderCoffee(self, request, context):
        order, brew = common.take(request, self.time_scale)
        if order is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, brew)
        async with self.baristas:
            await self.brew(brew)
        order.status = pb.ORDER_STATUS_READY
        return pb.OrderCoffeeResponse(order=order)

    async def OrderWithBuzzer(self, request, context):
        order, brew = common.take(request, self.time_scale)
        if order is None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, brew)
        yield common.event(order, pb.ORDER_STATUS_QUEUED)
        async with self.baristas:
            yield common.event(order, pb.ORDER_STATUS_BREWING)
            await self.brew(brew)
        yield common.event(order, pb.ORDER_STATUS_READY)


async def serve(args):
    server = grpc.aio.server(options=common.server_options(args))
    cafe_pb2_grpc.add_CafeServicer_to_server(
        AioCafe(args.time_scale, args.baristas, args.blocking), server)
    server.add_insecure_port(args.listen)
    await server.start()
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    await server.stop(grace=1)


def main():
    parser = common.parse_args(__doc__.splitlines()[0], "drinks brewed at once")
    parser.add_argument("--blocking", action="store_true",
                        help="brew with time.sleep(), blocking the event loop")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
