# A CPU worker (burn's flex backend): for clusters without GPUs and for trying the chart with
# workers.gpu: false. Ships Fashion-MNIST from Debian so the default job needs no data volume.
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t anygan-worker-cpu:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p anygan-worker \
 && cp target/release/worker /worker

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates dataset-fashion-mnist \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home anygan
COPY --from=build /worker /usr/local/bin/worker
USER 10001
EXPOSE 7071 9091
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["join"]
