# syntax=docker/dockerfile:1
#
# Growth Engine image: a release build on Debian 12 (bookworm), run as a non-root user, in
# production mode. Production refuses to start without its secrets (a key, API keys, a dashboard
# secret, PostgreSQL, Redis, an https API_URL): there is no development fallback, and so no public
# `dev-api-key`, in this image.
#
#   docker build -t growth-engine .
#   docker run --rm growth-engine growth-engine keygen            # a TOKEN_ENCRYPTION_KEY
#   docker run --rm -p 8003:8003 --env-file .env growth-engine    # serve (see .env.example)
#
# Secrets may come from files: TOKEN_ENCRYPTION_KEY_FILE=/run/secrets/token_encryption_key, ...
# (docker-compose.yml shows every one). For a local try-out without secrets, override the mode:
# `docker run -e ENVIRONMENT=development -e API_KEYS=$(openssl rand -hex 32) ...`.
#
# Health check without curl or wget (the slim image has neither): bash's /dev/tcp sends
# `GET /health/live` (the process answers; it does not test PostgreSQL or Redis, so an outage of
# theirs never gets a healthy replica restarted) and the check passes on a 200 status line.
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
# /app is writable by the service user (only a development override writes there: SQLite, key file).
WORKDIR /app
USER growth:growth
ENV ENVIRONMENT=production \
    PORT=8003 \
    HOST=0.0.0.0 \
    LOG_FORMAT=json \
    RUST_LOG=info
EXPOSE 8003
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8003} && printf 'GET /health/live HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
CMD ["growth-engine", "serve"]
