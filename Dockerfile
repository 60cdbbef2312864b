# The tokenwarden image: one static-free binary on a minimal, non-root runtime.
# Build:  docker build -t tokenwarden/tokenwarden:0.2.0 .   (or: buildah bud -t ... .)
# See docs/helm.md ("The image").

# --- build stage: the release binary, with the lock file's exact dependencies ---
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
COPY crds ./crds
RUN cargo build --release --locked --bin tokenwarden \
 && install -D -m 0755 target/release/tokenwarden /out/tokenwarden

# --- runtime stage: glibc and CA certificates only; no shell, no package manager ---
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/tokenwarden /usr/local/bin/tokenwarden
# The distroless "nonroot" user; the chart runs as it too (runAsUser 65532).
USER 65532:65532
EXPOSE 8080 8081 9090
ENTRYPOINT ["/usr/local/bin/tokenwarden"]
CMD ["--help"]
