-- A token's own egress allow-list, narrowing the operator's (HOMERUN_EGRESS_ALLOW): entries
-- in core/egress.py's syntax, each one the operator's list holds (homerun token egress checks
-- it). NULL: the operator's whole list; an empty array: no egress for this token. The runner
-- reads it at each egress attempt and hands it, signed, to the proxy (core/egressgate.py).
ALTER TABLE tokens ADD COLUMN egress_allow text[];
