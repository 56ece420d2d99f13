-- The café's orders: one row per order the café remembers, open or
-- finished (see services/cafe/src/store/mod.rs). Times are microseconds
-- since the Unix epoch; sizes and statuses are their cafe.v1 numbers.
CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    ticket      BIGINT NOT NULL UNIQUE,   -- its place in the line's numbering
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
    cafe_id     TEXT                      -- PostgreSQL's shared line only
);

-- Idempotency: one order per (customer, request id).
CREATE UNIQUE INDEX orders_request ON orders (customer, request_id)
    WHERE request_id IS NOT NULL;
-- The line after a restart: open orders in ticket order.
CREATE INDEX orders_open ON orders (ticket) WHERE status IN (1, 2);
-- Retention: finished orders, oldest first.
CREATE INDEX orders_finished ON orders (finished_at) WHERE finished_at IS NOT NULL;
