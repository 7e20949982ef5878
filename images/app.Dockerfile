# The homerun application image: `homerun api`, `homerun runner`, `homerun notifier` (and
# `homerun migrate`, `homerun token ...`) are its commands; CMD is `api`.
#
# Python packages come only from wheels built on the host into images/.wheels (scripts/images.sh):
# `pip install --no-index`, so the build needs no PyPI and installs exactly what was tested.
#
# User: the image runs as the unprivileged `homerun` (10001). The runner alone is started as
# root (the stack sets user 0 for it) because it must talk to the Docker socket, whose group
# differs per host; the entrypoint then joins that group and drops to homerun before starting
# the runner (see app-entrypoint.sh). Access to the socket is root-equivalent on the host either
# way; dropping root still keeps the process from owning its own container.

# ---- the image's Python with venv support; scripts/images.sh also asks it for its PEP 508
# marker environment to complete the host-built wheel set (images/wheelhouse.py)
FROM debian:bookworm-slim AS python
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*

# ---- build stage: a venv from the host-built wheels
FROM python AS build
RUN python3 -m venv /opt/homerun
# Dependencies first: this layer only changes when pyproject.toml's dependencies change.
COPY .wheels/deps/ /tmp/wheels/deps/
RUN /opt/homerun/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels/deps \
        /tmp/wheels/deps/*.whl
COPY .wheels/app/ /tmp/wheels/app/
RUN /opt/homerun/bin/pip install --no-cache-dir --no-index --find-links /tmp/wheels/deps \
        /tmp/wheels/app/*.whl \
    && /opt/homerun/bin/pip check \
    && /opt/homerun/bin/pip uninstall -y -q pip setuptools

# ---- runtime stage: python3, tini (PID 1 that forwards signals and reaps), the venv
FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="homerun" \
      org.opencontainers.image.description="homerun API, runner and notifier" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 tini ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 homerun \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
        --shell /usr/sbin/nologin homerun \
    && mkdir -p /var/lib/homerun/work && chown -R homerun:homerun /var/lib/homerun
COPY --from=build /opt/homerun /opt/homerun
COPY app-entrypoint.sh /usr/local/bin/homerun-entrypoint
COPY app-healthcheck.py /usr/local/bin/homerun-healthcheck
ENV PATH=/opt/homerun/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOMERUN_PORT=8000
USER 10001:10001
EXPOSE 8000
# The API answers /healthz; the runner and notifier are healthy while their process runs
# (app-healthcheck.py tells them apart by PID 1's command line).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["homerun-healthcheck"]
ENTRYPOINT ["/usr/bin/tini", "--", "homerun-entrypoint"]
CMD ["api"]
