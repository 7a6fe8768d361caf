-- Kudos postings a waiting caller's commit stored (group commit), not yet folded into
-- kudos_ledger and the balances. The periodic batch moves them there in one transaction, and so
-- does the start of every process: a commit is one short insert here instead of the ledger's
-- rows, their indexes and the balances. No index: the fold takes every row (ordered by id).
CREATE TABLE pending_postings (
    id BIGINT GENERATED ALWAYS AS IDENTITY,
    created_ms BIGINT NOT NULL,
    kind TEXT NOT NULL,
    from_account TEXT NOT NULL,
    to_account TEXT NOT NULL,
    amount BIGINT NOT NULL
);
