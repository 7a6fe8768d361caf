-- The kudos journal beside a SQLite database file (core/src/store/file_journal.rs): the number
-- of its last record folded into kudos_ledger and the balances, written in the fold's own
-- transaction, so that a start folds only the records after it.
CREATE TABLE journal_file (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    folded_seq BIGINT NOT NULL
);
INSERT INTO journal_file (id, folded_seq) VALUES (1, 0);
