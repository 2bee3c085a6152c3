# The node binary in an empty image. No base image is pulled: build the
# static binary first, then the image:
#
#   CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.commit=$(git rev-parse HEAD) -X main.built=$(date -u +%FT%TZ)" -o build/node ./cmd/node
#   docker build -t troupe-node .
#
# (The -X flags give `node version` the commit and build time where go
# build records none: a git worktree, or GOFLAGS=-buildvcs=false.)
#
# The exec runtime needs an interpreter, which this image does not have:
# containers run Starlark jobs only.
#
# The default command serves the API on 0.0.0.0, which a node does only
# with a token: run it with -e TROUPE_API_TOKEN=$(openssl rand -hex 32) (or
# TROUPE_API_TOKEN_FILE and a mounted file). Without one it refuses to
# start, unless the command says --insecure-api (compose.yaml does, on a
# private network published on the host's loopback).
FROM scratch
COPY build/node /node
# 7000: node messages (gRPC), 7001: SWIM gossip (UDP and TCP), 8080: HTTP API
EXPOSE 7000 7001 7001/udp 8080
ENTRYPOINT ["/node"]
CMD ["run", "--bind", "0.0.0.0:7000", "--http", "0.0.0.0:8080", "--data-dir", "/data"]
