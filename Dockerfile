# syntax=docker/dockerfile:1
# remedy's two images, from one build stage:
#
#   docker build --target remedy       -t ghcr.io/remedyhq/remedy:dev .
#   docker build --target remedy-agent -t ghcr.io/remedyhq/remedy-agent:dev .
#
# Both binaries are pure Go (SQLite is modernc.org/sqlite), so they are static and run
# on distroless/static: no shell, no package manager, nothing to patch but the binary.
# The engine image carries the default policy library in /etc/remedy/policies (mount
# your own over it). The agent image has no nsenter: irqbalance is restarted over the
# host's D-Bus socket (deploy/components/agent-nsenter explains the fallback).

ARG GO_VERSION=1.26
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux TARGETARCH=amd64
ENV CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH}
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags "-s -w" -o /out/remedy ./cmd/remedy && \
    go build -trimpath -ldflags "-s -w" -o /out/remedy-agent ./cmd/remedy-agent

FROM gcr.io/distroless/static-debian12:nonroot AS remedy
COPY --from=build /out/remedy /usr/local/bin/remedy
COPY --from=build /src/policies /etc/remedy/policies
USER 65532:65532
EXPOSE 9095 4222
ENTRYPOINT ["/usr/local/bin/remedy"]
CMD ["serve", "--listen=:9095", "--data-dir=/var/lib/remedy", "--policies=/etc/remedy/policies"]

# The agent runs as root in its pod (it writes /proc/irq and sysfs queue files); the
# DaemonSet grants it NET_ADMIN only.
FROM gcr.io/distroless/static-debian12 AS remedy-agent
COPY --from=build /out/remedy-agent /usr/local/bin/remedy-agent
ENTRYPOINT ["/usr/local/bin/remedy-agent"]
CMD ["run", "--host-root=/host"]

# For nodes whose irqbalance cannot be restarted over D-Bus (no systemd D-Bus socket):
# the same agent with nsenter (util-linux), used by deploy/components/agent-nsenter.
FROM debian:12-slim AS remedy-agent-nsenter
COPY --from=build /out/remedy-agent /usr/local/bin/remedy-agent
ENTRYPOINT ["/usr/local/bin/remedy-agent"]
CMD ["run", "--host-root=/host"]
