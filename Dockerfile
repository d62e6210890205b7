# syntax=docker/dockerfile:1
# burnguard's container image: the release binary alone on distroless, as a non-root user.
#   docker build -t burnguard .
# Not built by scripts/test or CI (the test machines have no container engine);
# tests/deploy_manifests.rs checks that the build is the locked release build, on a Rust at
# least the crate's rust-version, and that the build context holds every file the build reads.
# TLS is rustls everywhere (no OpenSSL), so the runtime image needs only glibc and the CA
# certificates distroless ships.
FROM rust:1.94-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
# Embedded into the binary by sqlx::migrate!.
COPY migrations migrations
# Cargo.toml declares the benchmark target, so cargo wants its file to exist.
COPY benches benches
RUN cargo build --release --locked --bin burnguard

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/burnguard /burnguard
USER nonroot
ENTRYPOINT ["/burnguard"]
