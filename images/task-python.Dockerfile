# Image for the built-in "python" task type: Debian's python3 interpreter and standard library
# (python3-minimal alone lacks json, which every task needs to read its input), no pip.
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="homerun task-python" \
      org.opencontainers.image.description="Runs homerun python tasks"

RUN apt-get update \
    && apt-get install -y --no-install-recommends python3-minimal libpython3.11-stdlib \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /homerun/inputs && chown -R 65534:65534 /homerun

# No .pyc writes into a read-only root; unbuffered so output reaches the log as it happens.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER 65534:65534
WORKDIR /homerun
CMD ["python3"]
