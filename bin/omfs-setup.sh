#!/usr/bin/env bash
# omfs-setup.sh: a fresh machine to a running 3-node omfs cluster with /mfs mounted, in one command.
# Run from anywhere as root on Debian 12 with Node.js 20 or later:   bash bin/omfs-setup.sh
#
# It installs what is missing (openssl, mount, util-linux from apt; npm ci when there is no
# node_modules), builds, links /sbin/mount.mfs to this checkout's bin/mount.mfs (so that
# `mount -t mfs` and fstab lines work), then runs
#   omfs-cluster up --nodes 3 --root --dir /var/lib/omfs-cluster
# which starts nodes 1..3 on this machine (mutual TLS) and mounts each one's view of the cluster:
# node 1's at /mfs, node K's at DIR/nodeK/mfs. Arguments replace "--nodes 3 --root" (e.g.
# `--nodes 5 --dir /srv/omfs`). It returns once every mount answers; stop everything with
#   node dist/bin/omfs-cluster.js down --dir /var/lib/omfs-cluster
set -euo pipefail

say() { printf 'omfs-setup: %s\n' "$*"; }
die() { printf 'omfs-setup: %s\n' "$*" >&2; exit 1; }

cd "$(dirname "$0")/.."
repo=$PWD

# --- What cannot be installed from here: say so before doing anything.
(( EUID == 0 )) || die "must run as root: mfsd acts for every caller's uid/gid, and FUSE mounts for all users need root"
[ -c /dev/fuse ] || die "/dev/fuse is missing (no FUSE in this kernel or container; in a container, pass --device /dev/fuse)"
command -v node >/dev/null || die "node is not installed: omfs needs Node.js 20 or later (Debian 12's own nodejs package is 18, too old)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
(( node_major >= 20 )) || die "Node.js $(node -v) is too old: omfs needs 20 or later"
command -v npm >/dev/null || die "npm is not installed (it comes with Node.js from nodejs.org or NodeSource)"

# --- Debian packages, only for what runs here:
#   openssl    - mfsctl makes the CA and the node certificates with the openssl CLI
#   mount      - mount(8)/umount(8): the mounts are made and removed with them
#   util-linux - findmnt, and mount -T for fstab files
# (no fuse3 or libfuse: omfs speaks the FUSE protocol on /dev/fuse itself)
need=(openssl mount util-linux)
missing=()
for p in "${need[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}"
fi

[ -d node_modules ] || { say "npm ci"; npm ci --no-audit --no-fund; }
say "building (npm run build)"
npm run --silent build

# mount(8) runs /sbin/mount.<type>: a link to this checkout's helper (a script that runs the build).
helper=/sbin/mount.mfs
if [ -e "$helper" ] && [ "$(readlink -f "$helper")" != "$repo/bin/mount.mfs" ]; then
  say "replacing $helper (was $(readlink -f "$helper"))"
fi
ln -sfn "$repo/bin/mount.mfs" "$helper"
say "$helper -> $repo/bin/mount.mfs"

args=("$@")
((${#args[@]})) || args=(--nodes 3 --root)
say "omfs-cluster up ${args[*]}"
node "$repo/dist/bin/omfs-cluster.js" up "${args[@]}"
