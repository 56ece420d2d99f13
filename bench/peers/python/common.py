"""What the two Python cafés share: the menu, the command line, and turning
an OrderRequest into an order and its brew time, exactly as the Rust café
does (the menu's medium brew time, times the size, times --time-scale).

The menu mirrors src/menu.rs; `bench/run --smoke` compares every peer's
GetMenu with the café's, so a drift fails CI.
"""

import argparse
import itertools
import signal

from cafe.v1 import cafe_pb2 as pb
from google.protobuf import duration_pb2

# id -> (name, medium brew time in seconds at scale 1, sizes)
ALL_SIZES = (pb.SIZE_SMALL, pb.SIZE_MEDIUM, pb.SIZE_LARGE)
MENU = {
    "espresso": ("Espresso", 20, (pb.SIZE_SMALL, pb.SIZE_MEDIUM)),
    "americano": ("Americano", 30, ALL_SIZES),
    "latte": ("Caffè latte", 40, ALL_SIZES),
    "cappuccino": ("Cappuccino", 45, ALL_SIZES),
    "mocha": ("Caffè mocha", 60, ALL_SIZES),
    "tea": ("Pot of tea", 180, ALL_SIZES),
}
SIZE_FACTOR = {pb.SIZE_SMALL: 0.75, pb.SIZE_MEDIUM: 1.0, pb.SIZE_LARGE: 1.5}

_ids = itertools.count(1)


def parse_args(description, baristas_help):
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--listen", default="127.0.0.1:50081", help="address to listen on")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiplier on the menu's brew times, as the café's --time-scale")
    parser.add_argument("--baristas", type=int, default=2, help=baristas_help)
    parser.add_argument("--max-pending", type=int, default=None,
                        help="calls gRPC core may hold before the server takes them "
                             "[default: gRPC's, 1,000 and a hard limit of 3,000]")
    return parser


def server_options(args):
    """gRPC core cancels (CANCELLED) the calls that arrive while more than
    `grpc.server.max_pending_requests` wait for the Python server to take them: 1,000 by
    default, 3,000 at most. A Python café meant for 10,000 customers raises both, as the
    Rust café raises its --queue-capacity; bench/run gives both the same room."""
    if args.max_pending is None:
        return []
    return [("grpc.server.max_pending_requests", args.max_pending),
            ("grpc.server.max_pending_requests_hard_limit", args.max_pending)]


def menu_response(time_scale):
    drinks = []
    for drink_id, (name, seconds, sizes) in MENU.items():
        drinks.append(pb.Drink(id=drink_id, name=name,
                               brew_time=duration_pb2.Duration(seconds=seconds),
                               sizes=list(sizes)))
    return pb.GetMenuResponse(drinks=drinks, time_scale=time_scale)


def take(request, time_scale):
    """(order, brew seconds) for a request, or (None, why) if it is refused."""
    drink = MENU.get(request.drink)
    if drink is None:
        return None, f"drink {request.drink!r} is not on the menu: choose one of {', '.join(MENU)}"
    size = request.size or pb.SIZE_MEDIUM
    if size not in drink[2]:
        return None, f"{request.drink} does not come in that size"
    order = pb.Order(id=f"ord-{next(_ids)}", customer=request.customer, drink=request.drink,
                     size=size, status=pb.ORDER_STATUS_QUEUED)
    return order, drink[1] * SIZE_FACTOR[size] * time_scale


def event(order, status):
    copy = pb.Order()
    copy.CopyFrom(order)
    copy.status = status
    return pb.OrderEvent(order=copy)


def on_sigterm(handler):
    """Calls handler() on SIGTERM (bench/run stops its servers that way)."""
    signal.signal(signal.SIGTERM, lambda *_: handler())
