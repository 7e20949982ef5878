# Image for the built-in "shell" task type: a POSIX sh (dash) and coreutils, nothing else.
# Tasks run as nobody (65534, present in every Debian base); the runner adds the rest of the
# lock-down (read-only root, no capabilities, no network, limits) per container.
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="homerun task-shell" \
      org.opencontainers.image.description="Runs homerun shell tasks"

# /homerun is where the runner places input.json and inputs/ and reads output.json; owned by
# the task user so a task can write there even when the runner does not mount a tmpfs on it.
RUN mkdir -p /homerun/inputs && chown -R 65534:65534 /homerun

USER 65534:65534
WORKDIR /homerun
CMD ["/bin/sh"]
