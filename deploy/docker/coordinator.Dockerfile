# The coordinator: a small Debian image with the one binary. Build from the repository root:
#   docker build -f deploy/docker/coordinator.Dockerfile -t anygan-coordinator:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p anygan-coordinator \
 && cp target/release/coordinator /coordinator

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home anygan
COPY --from=build /coordinator /usr/local/bin/coordinator
USER 10001
EXPOSE 7070 9090
ENTRYPOINT ["/usr/local/bin/coordinator"]
CMD ["start", "--listen", "0.0.0.0:7070", "--metrics-listen", "0.0.0.0:9090"]
