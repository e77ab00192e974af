# The agent sandbox image (docker backend). Build from the repository root:
#   docker build -t agent-harness-sandbox:latest -f docker/sandbox.Dockerfile .
# The container runs read-only, without network, capabilities or new privileges, as the
# unprivileged user below; /workspace is bind-mounted, /tmp is a tmpfs, and the credential
# proxy's socket arrives at /run/ahp/proxy.sock (socat forwards it to 127.0.0.1).
FROM debian:bookworm-slim

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        bash ca-certificates coreutils curl iproute2 procps socat \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --gid 1000 sandbox \
    && useradd --uid 1000 --gid 1000 --home-dir /workspace --no-create-home \
        --shell /bin/bash sandbox \
    && mkdir -p /workspace /run/ahp /etc/ahp \
    && chown sandbox:sandbox /workspace

ENV HOME=/workspace LANG=C.UTF-8 TERM=dumb
WORKDIR /workspace
USER sandbox:sandbox
CMD ["sleep", "infinity"]
