-- Every signed version of every order, keyed by (owner, nonce): a replace gives an order new
-- terms under a new nonce, and a fill made before the replace still settles under the terms it
-- matched (the fill names that nonce). The `orders` table keeps only the current terms.
CREATE TABLE order_versions (
    owner TEXT NOT NULL,
    nonce TEXT NOT NULL,
    order_id INTEGER NOT NULL,
    signed TEXT NOT NULL,
    signature TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (owner, nonce)
);
CREATE INDEX order_versions_order ON order_versions (order_id, seq);
-- Orders projected before this table existed keep their current terms as a version.
INSERT INTO order_versions (owner, nonce, order_id, signed, signature, seq)
SELECT owner, nonce, order_id, signed, signature, updated_seq FROM orders;
