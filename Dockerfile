# syntax=docker/dockerfile:1
# The `orderflow` image: one binary, the role chosen by the command (DESIGN.md section 2).
#   docker build -t orderflow .
#   docker run --rm orderflow --help
#   docker compose up --build            (the whole system, see docker-compose.yml)
#
# Stages: chef (toolchain + cargo-chef) -> planner (recipe.json: manifests and lockfile only)
# -> builder (dependencies cooked in their own layer, rebuilt only when the recipe changes; then
# our sources) -> runtime (Debian slim, non-root, just the binary).
# Builder and runtime share the Debian release so the binary finds the glibc it was linked against.

ARG RUST_VERSION=1.95.0
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
# Pinned: a new cargo-chef could compute a different recipe and silently defeat the cache.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /app

FROM chef AS planner
COPY Cargo.toml Cargo.lock ./
COPY .cargo .cargo
COPY shared shared
COPY functions functions
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Queries are checked against the committed .sqlx/ cache: no database at build time.
ENV SQLX_OFFLINE=true
COPY --from=planner /app/recipe.json recipe.json
# Same profile, flags (.cargo/config.toml: mimalloc's CFLAGS) and binary as the real build below,
# so every dependency is reused from here.
COPY .cargo .cargo
RUN cargo chef cook --release --locked --recipe-path recipe.json --bin orderflow
COPY Cargo.toml Cargo.lock ./
COPY .sqlx .sqlx
# Embedded into the binary at compile time by `sqlx::migrate!("../migrations")` in shared/.
COPY migrations migrations
COPY shared shared
COPY functions functions
RUN cargo build --release --locked --bin orderflow

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates for amqps:// and TLS to PostgreSQL; curl for the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 orderflow \
    && useradd --system --uid 10001 --gid orderflow --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin orderflow
COPY --from=builder /app/target/release/orderflow /usr/local/bin/orderflow
# Numeric, so orchestrators can verify "runs as non-root" without reading /etc/passwd.
USER 10001:10001
# Defaults for a container: listen on every interface, log JSON. Every other setting keeps the
# binary's default (`orderflow --help`) unless the environment sets it.
ENV HTTP_ADDR=0.0.0.0:8080 \
    BOARD_ADDR=0.0.0.0:8081 \
    LOG_FORMAT=json
# 8080: HTTP API, health and metrics (a worker serves only health and metrics). 8081: the board.
EXPOSE 8080 8081
# Liveness on whatever port HTTP_ADDR names. The start period covers start-up's wait of up to
# 60 s for PostgreSQL plus migrations: the listener opens only after both.
HEALTHCHECK --interval=10s --timeout=3s --start-period=90s --retries=3 \
    CMD curl -fsS --max-time 2 "http://127.0.0.1:${HTTP_ADDR##*:}/health/live" > /dev/null || exit 1
ENTRYPOINT ["orderflow"]
CMD ["all"]
