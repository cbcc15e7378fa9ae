-- How many connections a restore loaded on: 1 is one transaction (all or
-- nothing); more is a parallel load, which commits in several
-- transactions, so a failed or interrupted one can have changed the target
-- (its `committed` then says whether its first transaction committed).
ALTER TABLE restores ADD COLUMN jobs INTEGER NOT NULL DEFAULT 1;
