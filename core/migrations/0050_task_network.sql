-- What network a task asked for: 'none' (loopback only, every task before egress existed)
-- or 'egress' (through the egress proxy's allow-list: core/egress.py).
ALTER TABLE tasks ADD COLUMN network text NOT NULL DEFAULT 'none'
    CHECK (network IN ('none', 'egress'));
