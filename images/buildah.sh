# Sourced by the image scripts: `bah` is buildah with natops's own store, so natops's images
# neither need nor disturb another buildah or podman store on the machine. vfs, because it works
# on any file system and kernel (no overlay mounts); `bah bud` needs no daemon.
NATOPS_BUILDAH_ROOT=${NATOPS_BUILDAH_ROOT:-/var/lib/natops-buildah}
bah() {
  buildah --storage-driver vfs --root "$NATOPS_BUILDAH_ROOT/storage" --runroot /run/natops-buildah "$@"
}
command -v buildah >/dev/null || {
  echo "$(basename "$0"): buildah is missing (scripts/install-deps.sh installs it)" >&2
  exit 1
}
# buildah only recommends an OCI runtime, and RUN steps need one
command -v runc >/dev/null || command -v crun >/dev/null || {
  echo "$(basename "$0"): no OCI runtime (runc or crun) for the build's RUN steps (scripts/install-deps.sh installs runc)" >&2
  exit 1
}
