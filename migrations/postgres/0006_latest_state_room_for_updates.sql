-- With every evaluation kept, each cycle points every SLO's latest state at its new history
-- row: every row of this table is updated every cycle. Pages kept half empty let PostgreSQL
-- write each new row version on the page of the old one (a heap-only tuple update: no new
-- entry in the primary key, no page of its own) instead of growing the table and its index
-- until autovacuum catches up. It applies to pages written from now on.
ALTER TABLE latest_evaluations SET (fillfactor = 50);
