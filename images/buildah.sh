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

# archive_current OUT HASH: the archive OUT was made from inputs hashing to HASH
archive_current() {
  [ -s "$1" ] && [ "$(cat "$1.stamp" 2>/dev/null)" = "$2" ]
}

# build_archive IMAGE OUT HASH BUD-ARGS...: `bah bud` the image (its log shown only on failure),
# write it to OUT as a docker-archive that `cluster.sh load-image` loads, stamp OUT with HASH and
# print OUT. docker format: OCI's image config has no HEALTHCHECK (buildah would drop it).
build_archive() {
  local image=$1 out=$2 hash=$3 log
  shift 3
  mkdir -p "$(dirname "$out")"
  log=$(mktemp)
  if ! bah bud --pull-never --network host --format docker -t "$image" "$@" >"$log" 2>&1; then
    tail -30 "$log" >&2
    rm -f "$log"
    echo "$(basename "$0"): the build failed (above)" >&2
    return 1
  fi
  rm -f "$log" "$out.tmp"
  bah push --quiet "$image" "docker-archive:$out.tmp:$image" >/dev/null
  mv "$out.tmp" "$out"
  echo "$hash" >"$out.stamp"
  echo "$out"
}

# debian_image IMAGE DIR OUT SCRIPT: IMAGE from DIR/Dockerfile FROM the local Debian base
# (images/base-image.sh debian, passed as --build-arg BASE), as a docker-archive OUT; made again
# only when the base, DIR's files or SCRIPT (the caller) changed. Prints OUT.
debian_image() {
  local image=$1 dir=$2 out=$3 script=$4 base base_id hash
  base=$(bash images/base-image.sh debian)
  base_id=$(bah inspect --type image --format '{{.FromImageID}}' "$base")
  hash=$(printf '%s\n%s\n%s\n' "$image" "$base_id" "$(sha256sum "$dir"/* "$script")" | sha256sum | cut -c1-32)
  if archive_current "$out" "$hash"; then echo "$out"; return 0; fi
  build_archive "$image" "$out" "$hash" --build-arg BASE="$base" "$dir"
}
