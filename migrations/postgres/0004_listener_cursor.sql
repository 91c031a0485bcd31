-- Where each chain listener resumes: the last transaction it fully processed (every command it
-- produced acknowledged by the sequencer) and its slot. Not a projection of the journal (a
-- rebuild leaves it alone): losing it only makes the listener re-read history, which the
-- sequencer deduplicates by (signature, instruction index).
CREATE TABLE listener_cursor (
    name TEXT PRIMARY KEY,
    signature TEXT NOT NULL,
    slot BIGINT NOT NULL CHECK (slot >= 0)
);
