# syntax=docker/dockerfile:1
# The mediajobs server image. Each stage runs a script that CI also runs outside a container
# (scripts/container-check.sh), so these steps are tested although images are not built there.
#
#   docker build -t mediajobs .
#   docker run -p 8080:8080 -v mediajobs-data:/data mediajobs
#
# CUDA variant (whisper.cpp on an NVIDIA GPU; run with --gpus all):
#   docker build -t mediajobs:cuda --build-arg FEATURES=cuda \
#     --build-arg BASE=nvidia/cuda:12.6.3-devel-ubuntu24.04 \
#     --build-arg RUNTIME_BASE=nvidia/cuda:12.6.3-runtime-ubuntu24.04 .
ARG BASE=debian:bookworm-slim
ARG RUNTIME_BASE=debian:bookworm-slim

FROM ${BASE} AS build
ARG FEATURES=""
ARG RUST_VERSION=1.92.0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/opt/rustup CARGO_HOME=/opt/cargo PATH=/opt/cargo/bin:$PATH
RUN curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
  | sh -s -- -y --profile minimal --default-toolchain "${RUST_VERSION}"
WORKDIR /src
COPY . .
RUN FEATURES="${FEATURES}" scripts/container-build.sh /out \
 && rm -rf /var/lib/apt/lists/*

FROM ${RUNTIME_BASE}
COPY scripts/setup.sh scripts/container-runtime.sh /usr/local/lib/mediajobs/
RUN /usr/local/lib/mediajobs/container-runtime.sh /data \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/mediajobs /usr/local/bin/mediajobs
COPY scripts/container-entrypoint.sh /usr/local/bin/mediajobs-entrypoint
ENV MEDIAJOBS_BIND=0.0.0.0:8080 \
    MEDIAJOBS_DATA_DIR=/data
VOLUME ["/data"]
WORKDIR /data
# The `mediajobs` user scripts/container-runtime.sh made.
USER 10001:10001
EXPOSE 8080
# Ready = migrations ran, the database answers, the model (or remote backend) is usable. The
# first start fetches the model, hence the long start period.
HEALTHCHECK --interval=30s --timeout=10s --start-period=300s --retries=3 \
  CMD ["mediajobs", "ready", "--timeout-secs", "8"]
ENTRYPOINT ["mediajobs-entrypoint"]
CMD ["serve"]
