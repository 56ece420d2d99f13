-- The café's orders: one row per order the cafés remember, open or
-- finished (see services/cafe/src/store/mod.rs). Times are microseconds
-- since the Unix epoch; sizes and statuses are their cafe.v1 numbers.

-- Tickets: one numbering for every café sharing this database, so the
-- shared line is first come, first served across them.
CREATE SEQUENCE order_tickets AS BIGINT;

CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    ticket      BIGINT NOT NULL UNIQUE DEFAULT nextval('order_tickets'),
    customer    TEXT NOT NULL,
    drink       TEXT NOT NULL,            -- menu id
    size        INTEGER NOT NULL,         -- cafe.v1.Size number
    request_id  TEXT,                     -- NULL when none
    claim_token TEXT NOT NULL,
    placed_at   BIGINT NOT NULL,
    status      INTEGER NOT NULL,         -- cafe.v1.OrderStatus number (1 queued … 5 failed)
    barista     TEXT,
    started_at  BIGINT,
    ready_at    BIGINT,
    note        TEXT,
    finished_at BIGINT,                   -- set with a final status
    cafe_id     TEXT                      -- the shared line: the café brewing it
);
ALTER SEQUENCE order_tickets OWNED BY orders.ticket;

-- Idempotency: one order per (customer, request id), across cafés.
CREATE UNIQUE INDEX orders_request ON orders (customer, request_id)
    WHERE request_id IS NOT NULL;
-- The line: open orders in ticket order.
CREATE INDEX orders_open ON orders (ticket) WHERE status IN (1, 2);
-- Retention: finished orders, oldest first.
CREATE INDEX orders_finished ON orders (finished_at) WHERE finished_at IS NOT NULL;

-- The cafés sharing the line, and when each last said it is alive.
CREATE TABLE cafes (
    id           TEXT PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);
