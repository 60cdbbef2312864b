# The tokenwarden image: the release binary on a minimal, non-root runtime (glibc, libgcc_s and
# CA certificates; no shell, no package manager). The build context holds only the binary:
#
#   cargo build --release --locked --bin tokenwarden
#   mkdir -p image-context && cp target/release/tokenwarden image-context/
#   docker build -t registry.example.com/platform/tokenwarden:0.2.0 -f Dockerfile image-context
#
# BASE is the runtime base: distroless cc-debian12:nonroot by default; scripts/image.sh builds
# an equivalent base from Debian packages without a registry and passes it here, then writes
# the image to an OCI archive. See docs/helm.md ("The image").
ARG BASE=gcr.io/distroless/cc-debian12:nonroot
FROM ${BASE}
COPY tokenwarden /usr/local/bin/tokenwarden
# The distroless "nonroot" user; the chart runs as it too (runAsUser 65532).
USER 65532:65532
EXPOSE 8080 8081 9090
ENTRYPOINT ["/usr/local/bin/tokenwarden"]
CMD ["--help"]
