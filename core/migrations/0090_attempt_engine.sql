-- Where an attempt's container runs, and whether it is known to be gone. Before a lost
-- attempt's task runs again, its container must be dead: the runner that claims the retry
-- kills it when it is on its own engine, and every runner's sweep kills such containers on
-- its engine; either one records container_gone_at. (runners/lostruns.py)
ALTER TABLE attempts ADD COLUMN engine_id text;
ALTER TABLE attempts ADD COLUMN container_gone_at timestamptz;
