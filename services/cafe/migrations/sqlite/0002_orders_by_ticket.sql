-- Rows addressed by ticket: the ticket becomes the table's INTEGER PRIMARY
-- KEY, SQLite's own row number, so a row is one B-tree entry found by its
-- ticket, and a new order (the next ticket) goes at the tree's end. The
-- journal writes changes and deletions by ticket (see
-- services/cafe/src/store/sqlite.rs), so the id needs no index of its own;
-- the two partial indexes of 0001 were never read (a restart reads every
-- row) and cost a B-tree change on most writes. Every row is kept.
CREATE TABLE orders_by_ticket (
    ticket      INTEGER PRIMARY KEY,      -- its place in the line's numbering
    id          TEXT NOT NULL,
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

INSERT INTO orders_by_ticket (ticket, id, customer, drink, size, request_id, claim_token,
                              placed_at, status, barista, started_at, ready_at, note,
                              finished_at, cafe_id)
    SELECT ticket, id, customer, drink, size, request_id, claim_token,
           placed_at, status, barista, started_at, ready_at, note,
           finished_at, cafe_id
    FROM orders;

DROP TABLE orders;
ALTER TABLE orders_by_ticket RENAME TO orders;

-- Idempotency: one order per (customer, request id), as in 0001.
CREATE UNIQUE INDEX orders_request ON orders (customer, request_id)
    WHERE request_id IS NOT NULL;
