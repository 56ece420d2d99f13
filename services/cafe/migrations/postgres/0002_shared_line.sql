-- Several cafés on one line (services/cafe/src/store/shared.rs).
--
-- Each café keeps every order in memory and hears of the other cafés'
-- writes through NOTIFY, a moment after they commit; meanwhile it may have
-- written a newer change to the same order itself. Every write adds one to
-- the order's version, so a café applies what it hears only when it is
-- newer than what it has.
ALTER TABLE orders ADD COLUMN version BIGINT NOT NULL DEFAULT 0;
