# ztv image: the release binary on distroless/cc (a C runtime and CA certificates, but no shell
# and no package manager), running as the unprivileged `nonroot` user (uid/gid 65532).
#
#   docker build -t ztv .
#   docker run -p 8080:8080 -v ztv-data:/var/lib/ztv \
#     -e ZTV_ACCOUNTS__PROD__MEETING_SDK__CLIENT_ID=… \
#     -e ZTV_ACCOUNTS__PROD__MEETING_SDK__CLIENT_SECRET=… ztv
#
# Configuration: the defaults are compiled in (config/default.toml); everything is set with
# `ZTV_<SECTION>__<KEY>` variables or a file named by ZTV_CONFIG / `--config`.

# ---- builder ---------------------------------------------------------------------------
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /build

# Dependencies first, with stub sources, so that this slow layer is reused as long as
# Cargo.toml and Cargo.lock do not change. (SQLite, bundled by sqlx, and mimalloc are compiled
# from C with the options in .cargo/config.toml; the rust image already has gcc and make.)
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src

# The real sources. config/default.toml (include_str!) and migrations/ (sqlx::migrate!) are
# read at compile time and embedded in the binary: the image needs neither at run time.
COPY src ./src
COPY config ./config
COPY migrations ./migrations
# COPY keeps the files' old modification times, which can be older than the stub build:
# touch them so that cargo rebuilds the crate instead of keeping the stub binary.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked \
    && install -D -m 0755 target/release/ztv /out/ztv \
    && install -d -m 0700 /out/var/lib/ztv/data

# ---- runtime ---------------------------------------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=builder /out/ztv /usr/local/bin/ztv
# The SQLite database lives in /var/lib/ztv/data (0700; ztv creates its files 0600); mount a
# volume on /var/lib/ztv to keep it.
# A new named volume takes this folder's owner (65532); a bind mount must be made writable
# for uid 65532 by hand.
COPY --from=builder --chown=65532:65532 /out/var/lib/ztv /var/lib/ztv
WORKDIR /var/lib/ztv

ENV ZTV_SERVER__BIND=0.0.0.0:8080 \
    ZTV_LOG_FORMAT=json \
    ZTV_DATABASE__URL=sqlite:///var/lib/ztv/data/ztv.db

EXPOSE 8080

# No curl in distroless: the binary checks GET /healthz on server.bind itself.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/ztv", "healthcheck"]

USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ztv"]
CMD ["serve"]
