-- Withdrawals carry how they are paid (an operator co-signed transaction, or the owner's
-- on-chain exit hatch) and the paying transaction: the co-signed one from 'broadcasting' on,
-- with the last block height at which it can land, so the expiry watcher finds what to fail.
ALTER TABLE withdrawals ADD COLUMN kind TEXT NOT NULL DEFAULT 'cosigned'
    CHECK (kind IN ('cosigned', 'exit_hatch'));
ALTER TABLE withdrawals ADD COLUMN tx TEXT;
ALTER TABLE withdrawals ADD COLUMN last_valid_block_height INTEGER;
CREATE INDEX withdrawals_status ON withdrawals (status, id);
