-- The ledger is read whole (audits, tests), never by account: its two account indexes cost two
-- more B-tree inserts per posting on every write and served no query. An account's history, if
-- it is ever served, wants one index on (account, id) instead.
DROP INDEX kudos_ledger_from;
DROP INDEX kudos_ledger_to;
