# statecast: every binary in one small image (Debian 12).
#   docker build -t statecast:0.1.0 .
# Stage 1 builds with the Debian -dev packages; stage 2 carries only the
# binaries, the web display and the runtime libraries, and runs as a non-root
# user. The entrypoint raises the soft open-file limit to the hard limit
# (Kubernetes has no field for RLIMIT_NOFILE; see docs/deployment.md).
FROM debian:12-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config libh2o-dev libuv1-dev libhiredis-dev libcjson-dev \
      libyaml-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DSTATECAST_TESTS=OFF -DCMAKE_INSTALL_PREFIX=/usr/local \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build \
 && printf '%s\n' \
      '#!/bin/sh' \
      '# Raise the soft open-file limit (to STATECAST_NOFILE, default: the hard limit), then run the command.' \
      'want="${STATECAST_NOFILE:-$(ulimit -H -n)}"' \
      'ulimit -n "$want" 2>/dev/null || echo "statecast-entrypoint: cannot raise the open-file limit to $want (hard limit $(ulimit -H -n))" >&2' \
      'exec "$@"' > /out/usr/local/bin/statecast-entrypoint \
 && chmod 0755 /out/usr/local/bin/statecast-entrypoint

FROM debian:12-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libh2o0.13 libuv1 libhiredis0.14 libcjson1 libyaml-0-2 libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 statecast \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin statecast
COPY --from=build /out/usr/local/ /usr/local/
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/statecast-entrypoint"]
CMD ["statecast-apiserver"]
