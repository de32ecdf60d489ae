#!/bin/sh
# Build the cloud image (deploy/Dockerfile) with podman, from the repository root:
#
#   sh deploy/build-image.sh [TAG]        (default TAG: localhost/storesight-cloud:dev)
#
# Environment:
#   BASE_IMAGE     deploy/Dockerfile's base (default: its own, debian:bookworm-slim);
#                  deploy/base-image.sh builds localhost/storesight-debian:bookworm-slim
#   PIP_INDEX_URL  the index pip uses inside the build (default: this machine's pip
#                  `global.index-url`, else https://pypi.org/simple)
#   PIP_CERT       a CA bundle for that index, handed in as the `pip_cert` build secret
#                  (default: this machine's pip `global.cert`, when set)
#   PODMAN         the podman command (default: podman); PODMAN_ARGS: more options for
#                  `podman build` (and for `podman run` in tests/test_container.py). The
#                  sandbox this was built in needed PODMAN="podman --runtime runc" (crun refuses
#                  its hybrid cgroups) and PODMAN_ARGS="--ulimit nofile=20000:20000
#                  --ulimit nproc=4096:4096" (podman's default limits are above its own).
set -eu

tag=${1:-localhost/storesight-cloud:dev}
podman=${PODMAN:-podman}
# a key of this machine's pip configuration (`pip config list`: files, then PIP_* variables)
pip_config() {
    python3 -m pip config list 2>/dev/null \
        | sed -n "s/^\(global\|:env:\)\.$1='\(.*\)'\$/\2/p" | tail -n 1
}

index=${PIP_INDEX_URL:-$(pip_config index-url)}
index=${index:-https://pypi.org/simple}
cert=${PIP_CERT:-$(pip_config cert)}

set -- --format docker --network host --build-arg "PIP_INDEX_URL=$index" -f deploy/Dockerfile -t "$tag"
[ -n "${BASE_IMAGE:-}" ] && set -- "$@" --build-arg "BASE_IMAGE=$BASE_IMAGE"
[ -n "$cert" ] && [ -s "$cert" ] && set -- "$@" --secret "id=pip_cert,src=$cert"

echo "building $tag (index $index${cert:+, CA bundle $cert})"
# shellcheck disable=SC2086  # PODMAN and PODMAN_ARGS are word lists
exec $podman build ${PODMAN_ARGS:-} "$@" .
