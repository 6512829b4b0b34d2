# The GPU worker: built against CUDA's development image with the `cuda` feature (burn-cuda
# compiles its kernels at run time through NVRTC, so the runtime image needs the CUDA runtime
# and NVRTC libraries, which the -runtime image has), run on the matching runtime image.
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t anygan-worker-cuda:0.1.0 .
ARG CUDA_VERSION=12.6.3
FROM nvidia/cuda:${CUDA_VERSION}-devel-ubuntu24.04 AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends curl ca-certificates build-essential pkg-config \
 && rm -rf /var/lib/apt/lists/*
RUN curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal --default-toolchain 1.95.0
ENV PATH=/root/.cargo/bin:$PATH
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p anygan-worker --no-default-features --features cuda \
 && cp target/release/worker /worker

FROM nvidia/cuda:${CUDA_VERSION}-runtime-ubuntu24.04
# dataset-fashion-mnist comes from Ubuntu's universe (as Debian's package); with your own data
# (job.data: s3://...) it can be dropped.
RUN apt-get update \
&
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home anygan
COPY --from=build /worker /usr/local/bin/worker
USER 10001
ENV NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
EXPOSE 7071 9091
ENTRYPOINT ["/usr/local/bin/worker"]
CMD ["join"]
