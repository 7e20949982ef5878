# Postgres 15 for homerun, from Debian's packages; one image, two roles (HOMERUN_PG_ROLE):
#   primary  initialises the cluster on first start: the app role and database, a replication
#            role, pg_hba rules for both; streams WAL to replicas.
#   replica  waits for the primary, takes a pg_basebackup with the replication role, then runs
#            as a hot standby streaming from the primary.
# Passwords are read only from files (Swarm secrets): POSTGRES_PASSWORD_FILE and
# HOMERUN_PG_REPLICATION_PASSWORD_FILE. See postgres-entrypoint.sh for every variable.
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="homerun postgres" \
      org.opencontainers.image.description="PostgreSQL 15 primary/replica for homerun"

# The postgres user gets a fixed uid/gid (999, as in the official image) before the package
# would pick one, so Swarm secrets can be handed to it with uid 999 and mode 0400, and a
# volume keeps its owner across image rebuilds.
# Debian's postinst would create a cluster under /etc/postgresql; the entrypoint owns PGDATA.
RUN groupadd --system --gid 999 postgres \
    && useradd --system --uid 999 --gid 999 --home-dir /var/lib/postgresql --no-create-home \
        --shell /bin/bash postgres \
    && mkdir -p /etc/postgresql-common/createcluster.d \
    && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/homerun.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
    && chmod 0700 /var/lib/postgresql/data

COPY postgres-entrypoint.sh /usr/local/bin/homerun-postgres
COPY postgres-healthcheck.sh /usr/local/bin/homerun-postgres-healthcheck

ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data \
    HOMERUN_PG_ROLE=primary
USER postgres
VOLUME /var/lib/postgresql/data
EXPOSE 5432
# Long start period: a replica's first base backup copies the whole primary.
HEALTHCHECK --interval=5s --timeout=5s --start-period=120s --retries=5 \
    CMD ["homerun-postgres-healthcheck"]
# Postgres handles SIGTERM itself (smart shutdown) and reaps its children: no init needed.
STOPSIGNAL SIGINT
ENTRYPOINT ["homerun-postgres"]
