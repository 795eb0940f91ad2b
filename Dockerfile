# syntax=docker/dockerfile:1
# quantd container image: `quantd serve` (gRPC 50051, /metrics 9464) with its
# data directory on a volume; the same image runs batch jobs
# (`quantd run-job`, see deploy/kubernetes/batch/).
#
#   docker build -t quantd:dev .
#   docker run -v quantd-data:/var/lib/quantd \
#     -v $PWD/tokens:/etc/quantd/tokens:ro -p 50051:50051 -p 9464:9464 quantd:dev
#
# Checked without a Docker engine by tests/deploy/dockerfile_check.sh: the
# stages, that every runtime package exists in Debian 12, and that the
# packages cover every shared library `ldd` lists for quantd and quantctl.

# ---- build: the repository's own dependency script, then a Release build of
# the two binaries only (no tests, no benchmarks).
FROM debian:bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not reinstall them.
COPY tools/install-deps.sh tools/install-deps.sh
RUN tools/install-deps.sh
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DQUANTD_BUILD_TESTS=OFF -DQUANTD_BUILD_BENCHMARKS=OFF \
 && cmake --build build --target quantd quantctl \
 && strip build/server/quantd build/client/quantctl

# ---- runtime: Debian's runtime libraries for what the binaries link (their
# dependencies, such as libgrpc29, libcivetweb1 and libre2-9, come along;
# the push library is for run-job's Pushgateway push; libcurl and the CA
# certificates for object storage over HTTPS).
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libdnnl2 ocl-icd-libopencl1 libgomp1 \
      libgrpc++1.51 libprotobuf32 libonnx1 libabsl20220623 \
      libprometheus-cpp-core1.0 libprometheus-cpp-pull1.0 libprometheus-cpp-push1.0 \
      libzip4 libsqlite3-0 libpq5 libssl3 libgoogle-glog0v6 libopenblas0-pthread \
      libcurl4 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# A fixed non-root uid/gid, so Kubernetes' runAsUser/fsGroup can name it.
RUN groupadd --system --gid 10001 quantd \
 && useradd --system --uid 10001 --gid quantd --home-dir /var/lib/quantd \
      --no-create-home --shell /usr/sbin/nologin quantd \
 && mkdir -p /var/lib/quantd /etc/quantd \
 && chown quantd:quantd /var/lib/quantd
COPY --from=build /src/build/server/quantd /usr/local/bin/quantd
COPY --from=build /src/build/client/quantctl /usr/local/bin/quantctl
COPY deploy/docker/healthcheck.sh /usr/local/bin/quantd-healthcheck
USER 10001:10001
WORKDIR /var/lib/quantd
EXPOSE 50051 9464
VOLUME /var/lib/quantd
# quantctl has no health subcommand and the image has no grpc_health_probe,
# so the check makes a real authenticated gRPC call with quantctl (jobs list,
# token from the tokens file): exit 0, or 2 (the server answered, e.g.
# UNAUTHENTICATED), is healthy; 3 (unreachable/UNAVAILABLE) is not. Stronger
# than a TCP connect: it needs the gRPC server and its job store to answer.
HEALTHCHECK --interval=30s --timeout=10s --start-period=15s --retries=3 \
  CMD ["/usr/local/bin/quantd-healthcheck"]
CMD ["quantd", "serve", "--data-dir", "/var/lib/quantd", \
     "--listen-address", "0.0.0.0", "--tokens-file", "/etc/quantd/tokens", \
     "--metrics-address", "0.0.0.0:9464"]
