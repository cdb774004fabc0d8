# syntax=docker/dockerfile:1
#
# Growth Engine image: a release build on Debian 12 (bookworm), run as a non-root user.
#
#   docker build -t growth-engine .
#   docker run --rm growth-engine growth-engine keygen            # a TOKEN_ENCRYPTION_KEY
#   docker run --rm -p 8003:8003 --env-file .env growth-engine    # serve
#
# Health check without curl or wget (the slim image has neither): bash's /dev/tcp sends
# `GET /health` and the check passes on a 200 status line. Nothing is added to the image for it.
#
# NOTE: written without a Docker engine at hand (none on the development machines); not yet built.

FROM rust:1-bookworm AS builder
WORKDIR /src
# The build uses its own target directory, so a host `target/` in the build context is never reused.
ENV CARGO_TARGET_DIR=/build/target
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked --no-default-features --package growth-engine --bin growth-engine \
    && install -m 0755 /build/target/release/growth-engine /usr/local/bin/growth-engine

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 growth \
    && useradd --system --uid 10001 --gid growth --home-dir /app --shell /usr/sbin/nologin growth \
    && mkdir -p /app \
    && chown growth:growth /app
COPY --from=builder /usr/local/bin/growth-engine /usr/local/bin/growth-engine
# /app is writable by the service user: the development defaults (SQLite file, key file) live here.
WORKDIR /app
USER growth:growth
ENV PORT=8003 \
    HOST=0.0.0.0 \
    LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8003
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8003} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
CMD ["growth-engine", "serve"]
