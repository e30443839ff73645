#!/usr/bin/env bash
# omfs-local-node.sh: one omfs node on this machine, everything that works today, in one command.
# Run from the repo root as root on Debian 12 with Node 20:   bash bin/omfs-local-node.sh
#
# It installs what is missing (npm ci when there is no node_modules; openssl, mount, util-linux
# from apt), builds, makes a cluster CA and a node certificate in the state directory (once, kept
# for the next run), writes an mfsd config there, starts mfsd (node 1, mTLS) and waits until
# `mfsctl identify` answers, then mounts omfs-passthrough of the export directory. It stays in the
# foreground; Ctrl-C or SIGTERM unmounts and stops mfsd, and so does any failure on the way.
# SIGKILL cannot be trapped: after one, run the script again and it names what is left over.
#
# The mount is omfs-passthrough mirroring the export directory locally through our FUSE layer; it
# does not go through mfsd. The cluster mount /mfs, which will, does not exist yet.
set -euo pipefail

# A non-interactive shell starts background commands with SIGINT ignored, and bash cannot trap a
# signal ignored on entry: `kill -INT` would do nothing. Start again with SIGINT at its default.
sig_ignored=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status) # hex mask, bit n-1 = signal n
if (( (16#${sig_ignored: -1} >> 1) & 1 )) && [ -z "${OMFS_DEMO_REEXEC:-}" ]; then
  OMFS_DEMO_REEXEC=1 exec env --default-signal=INT bash "$0" "$@"
fi

usage() {
  cat <<EOF
usage: bash bin/omfs-local-node.sh [--state-dir DIR] [--listen HOST:PORT] [--export DIR] [--mountpoint DIR]
  --state-dir DIR     CA, node certificate, mfsd config, mfsd state and logs
                      (env OMFS_DEMO_STATE_DIR, default /var/lib/omfs-demo)
  --listen HOST:PORT  where mfsd serves (env OMFS_DEMO_LISTEN, default 127.0.0.1:7117)
  --export DIR        the directory mfsd exports (dfsa=1) and the mount mirrors
                      (env OMFS_DEMO_EXPORT, default /srv/omfs/export; created if missing)
  --mountpoint DIR    where omfs-passthrough mounts it
                      (env OMFS_DEMO_MOUNTPOINT, default /mnt/omfs-export; created if missing)
EOF
}

say() { printf 'omfs-local-node: %s\n' "$*"; }
die() { printf 'omfs-local-node: %s\n' "$*" >&2; exit 1; }

state_dir=${OMFS_DEMO_STATE_DIR:-/var/lib/omfs-demo}
listen=${OMFS_DEMO_LISTEN:-127.0.0.1:7117}
export_dir=${OMFS_DEMO_EXPORT:-/srv/omfs/export}
mount_point=${OMFS_DEMO_MOUNTPOINT:-/mnt/omfs-export}
while (($#)); do
  case $1 in
    --state-dir|--listen|--export|--mountpoint)
      (($# >= 2)) || { usage >&2; die "$1 needs a value"; }
      case $1 in
        --state-dir) state_dir=$2 ;;
        --listen) listen=$2 ;;
        --export) export_dir=$2 ;;
        --mountpoint) mount_point=$2 ;;
      esac
      shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument $1" ;;
  esac
done

cd "$(dirname "$0")/.."
repo=$PWD

# --- What cannot be installed from here: say so before doing anything.
(( EUID == 0 )) || die "must run as root: mfsd acts for every caller's uid/gid, and mounting FUSE with mount(8) needs root"
[ -c /dev/fuse ] || die "/dev/fuse is missing (no FUSE in this kernel or container; in a container, pass --device /dev/fuse)"
command -v node >/dev/null || die "node is not installed: omfs needs Node.js 20 or later (Debian 12's own nodejs package is 18, too old)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
(( node_major >= 20 )) || die "Node.js $(node -v) is too old: omfs needs 20 or later"

# Paths go into mfsd's JSON config, which wants them absolute.
state_dir=$(realpath -m -- "$state_dir")
export_dir=$(realpath -m -- "$export_dir")
mount_point=$(realpath -m -- "$mount_point")
case $mount_point/ in
  "$export_dir"/*) die "--mountpoint $mount_point must not be the export directory or inside it" ;;
esac
# HOST:PORT or [V6]:PORT. mfsctl identify dials a loopback address when mfsd listens on all.
if [[ $listen =~ ^(\[([^]]+)\]|([^]:[]+)):([0-9]{1,5})$ ]]; then
  listen_host=${BASH_REMATCH[2]:-${BASH_REMATCH[3]}}
  listen_port=${BASH_REMATCH[4]}
else
  die "--listen must be HOST:PORT or [IPv6]:PORT, got \"$listen\""
fi
case $listen_host in
  0.0.0.0) dial="127.0.0.1:$listen_port" ;;
  ::) dial="[::1]:$listen_port" ;;
  *:*) dial="[$listen_host]:$listen_port" ;;
  *) dial="$listen_host:$listen_port" ;;
esac

mfsctl=(node "$repo/dist/bin/mfsctl.js")
ca_dir=$state_dir/ca     # ca.key (0600), ca.crt: the cluster CA, kept here for this demo only
tls_dir=$state_dir/tls   # node.key, node.crt, ca.crt: what mfsd and mfsctl identify present
mfsd_pidfile=$state_dir/mfsd.pid
pt_pidfile=$state_dir/omfs-passthrough.pid

# A run that was SIGKILLed (or one still running) leaves its children; name them, do not fight them.
leftover=()
for f in "$mfsd_pidfile" "$pt_pidfile"; do
  [ -f "$f" ] || continue
  old=$(<"$f")
  cmdline=''
  if [[ $old =~ ^[0-9]+$ ]] && [ -r "/proc/$old/cmdline" ]; then
    cmdline=$(tr '\0' ' ' <"/proc/$old/cmdline" 2>/dev/null) || true
  fi
  if [[ $cmdline == *"$repo/dist/bin/"* ]]; then
    say "still running from an earlier run: pid $old: ${cmdline% }" >&2
    leftover+=("$old")
  else
    rm -f "$f"
  fi
done
((${#leftover[@]} == 0)) || die "stop them first: kill ${leftover[*]} (SIGTERM unmounts and stops them cleanly)"
# findmnt, not mountpoint(1): it reads mountinfo, so it also sees a dead FUSE mount (stat fails).
mounted_fs() { findmnt -n -o FSTYPE --mountpoint "$mount_point" 2>/dev/null | head -n1; }
if [ -n "$(mounted_fs)" ]; then
  if [ "$(mounted_fs)" = fuse.omfs-passthrough ] && ! stat "$mount_point" >/dev/null 2>&1; then
    say "$mount_point holds a dead omfs-passthrough mount (an earlier run was killed): umount -l"
    umount -l "$mount_point"
  else
    die "$mount_point is already a mount point ($(findmnt -n -o SOURCE,FSTYPE --mountpoint "$mount_point" | tr -s ' ')); unmount it or pick another --mountpoint"
  fi
fi

# --- Debian packages, only for what this script runs:
#   openssl    - mfsctl makes the CA and the node certificate with the openssl CLI
#   mount      - mount(8)/umount(8): omfs-passthrough mounts through `mount -i -t fuse`
#   util-linux - findmnt (checks here) and setsid (children in their own session)
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

[ -d "$state_dir" ] || { mkdir -p "$state_dir"; chmod 0700 "$state_dir"; }
mkdir -p "$export_dir" "$mount_point"

# --- Certificates, made once and kept.
if [ ! -f "$ca_dir/ca.crt" ]; then
  [ ! -e "$ca_dir/ca.key" ] || die "$ca_dir/ca.key exists without ca.crt (an interrupted earlier run?); remove $ca_dir and run again"
  "${mfsctl[@]}" ca init --dir "$ca_dir"
fi
if [ ! -f "$tls_dir/node.crt" ]; then
  [ ! -e "$tls_dir/node.key" ] || die "$tls_dir/node.key exists without node.crt (an interrupted earlier run?); remove $tls_dir and run again"
  hosts=()
  case $listen_host in 0.0.0.0|::|localhost|127.0.0.1|::1) ;; *) hosts=(--host "$listen_host") ;; esac
  "${mfsctl[@]}" ca issue node1 --dir "$ca_dir" --out "$tls_dir" "${hosts[@]}"
fi

# --- mfsd config, rewritten on every run from the options above (JSON made by node: no quoting bugs).
config=$state_dir/mfsd.json
# shellcheck disable=SC2016 # the JavaScript's own template strings
CONFIG=$config LISTEN=$listen STATE=$state_dir/mfsd EXPORT=$export_dir TLS=$tls_dir node -e '
  const e = process.env;
  const config = {
    node: 1, listen: e.LISTEN, stateDir: e.STATE,
    exports: [{ path: e.EXPORT, dfsa: 1 }],
    tls: { ca: `${e.TLS}/ca.crt`, cert: `${e.TLS}/node.crt`, key: `${e.TLS}/node.key` },
  };
  require("node:fs").writeFileSync(e.CONFIG, JSON.stringify(config, null, 2) + "\n");
'

# --- From here on, whatever happens, the trap unmounts and stops what was started.
mfsd_pid=''
pt_pid=''
pt_started=''
mfsd_log=$state_dir/mfsd.log
pt_log=$state_dir/omfs-passthrough.log

# Wait up to $2 tenths of a second for pid $1 to exit (bash reaps its children as they exit).
wait_gone() {
  local i
  for ((i = 0; i < $2; i++)); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  return 1
}

cleanup() {
  local rc=$?
  set +e
  trap '' INT TERM HUP
  if [ -n "$pt_pid" ]; then
    say "unmounting $mount_point"
    kill -TERM "$pt_pid" 2>/dev/null
    if ! wait_gone "$pt_pid" 100; then
      say "omfs-passthrough (pid $pt_pid) did not exit in 10 s: umount -l and SIGKILL"
      umount -l "$mount_point" 2>/dev/null
      kill -KILL "$pt_pid" 2>/dev/null
      wait_gone "$pt_pid" 20
    fi
    rm -f "$pt_pidfile"
  fi
  # Our omfs-passthrough died without unmounting (SIGKILL, crash): its mount answers ENOTCONN.
  if [ -n "$pt_started" ] && [ "$(mounted_fs)" = fuse.omfs-passthrough ]; then
    say "lazily unmounting the dead mount at $mount_point"
    umount -l "$mount_point" 2>/dev/null
  fi
  if [ -n "$mfsd_pid" ]; then
    say "stopping mfsd (pid $mfsd_pid)"
    kill -TERM "$mfsd_pid" 2>/dev/null
    # mfsd drains in-flight calls for up to shutdownGraceMs (10 s by default) before it exits.
    if ! wait_gone "$mfsd_pid" 150; then
      say "mfsd (pid $mfsd_pid) did not exit in 15 s: SIGKILL"
      kill -KILL "$mfsd_pid" 2>/dev/null
      wait_gone "$mfsd_pid" 20
    fi
    rm -f "$mfsd_pidfile"
  fi
  if [ -n "$pt_started$mfsd_pid" ]; then
    if [ -n "$(mounted_fs)" ]; then
      say "WARNING: $mount_point is still mounted ($(mounted_fs))"
    else
      say "stopped: nothing mounted at $mount_point, mfsd not running"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Children run in their own session (setsid): Ctrl-C reaches only this script, which then stops
# them in order (unmount first, then mfsd) instead of all at once.
say "starting mfsd (log $mfsd_log)"
setsid node "$repo/dist/bin/mfsd.js" --config "$config" >"$mfsd_log" 2>&1 </dev/null &
mfsd_pid=$!
echo "$mfsd_pid" >"$mfsd_pidfile"

# Ready when it has printed its ready line (it has bound the port) and identify answers over mTLS.
for ((i = 0; ; i++)); do
  if ! kill -0 "$mfsd_pid" 2>/dev/null; then
    wait "$mfsd_pid" && code=0 || code=$?
    mfsd_pid=''
    rm -f "$mfsd_pidfile"
    hint=''
    grep -q 'address in use' "$mfsd_log" && hint=" (another process listens on $listen; stop it or pass --listen HOST:PORT)"
    die "mfsd exited with code $code before it was ready$hint; its output:
$(sed 's/^/  /' "$mfsd_log")"
  fi
  if grep -q '^mfsd: node .* listening on ' "$mfsd_log" && identify=$("${mfsctl[@]}" identify "$dial" --dir "$tls_dir" 2>&1); then
    break
  fi
  ((i < 300)) || die "mfsd did not answer mfsctl identify $dial within 30 s; last answer: ${identify:-none}; log $mfsd_log"
  sleep 0.1
done
say "$(grep -m1 '^mfsd: node' "$mfsd_log")"
say "mfsctl identify $dial --dir $tls_dir:"
printf '%s\n' "$identify"

say "mounting omfs-passthrough $export_dir on $mount_point (log $pt_log)"
setsid node "$repo/dist/bin/omfs-passthrough.js" "$export_dir" "$mount_point" >"$pt_log" 2>&1 </dev/null &
pt_pid=$!
pt_started=1
echo "$pt_pid" >"$pt_pidfile"
for ((i = 0; ; i++)); do
  if ! kill -0 "$pt_pid" 2>/dev/null; then
    wait "$pt_pid" && code=0 || code=$?
    pt_pid=''
    rm -f "$pt_pidfile"
    die "omfs-passthrough exited with code $code before it mounted; its output:
$(sed 's/^/  /' "$pt_log")"
  fi
  grep -q '^omfs-passthrough: mounted ' "$pt_log" && break
  ((i < 300)) || die "omfs-passthrough did not mount within 30 s; log $pt_log"
  sleep 0.1
done

cat <<EOF

omfs node 1 is up:
  mfsd              pid $mfsd_pid, serving $listen over mutual TLS, log $mfsd_log
  export (dfsa=1)   $export_dir
  FUSE mount        $mount_point = omfs-passthrough of $export_dir (local, not through mfsd),
                    pid $pt_pid, log $pt_log
  cluster CA        $ca_dir (ca.key stays here: a demo CA)
  node certificate  $tls_dir (node.crt, node.key, ca.crt)
  mfsd config       $config, mfsd state $state_dir/mfsd
Try:
  echo hello > $mount_point/hello && cat $export_dir/hello
  node dist/bin/mfsctl.js identify $dial --dir $tls_dir
Ctrl-C (or SIGTERM to pid $$) unmounts and stops mfsd.
EOF

# Foreground until a signal (the traps run cleanup) or until a child dies on its own.
while :; do
  wait -n "$mfsd_pid" "$pt_pid" || true
  if ! kill -0 "$pt_pid" 2>/dev/null; then
    say "omfs-passthrough (pid $pt_pid) exited on its own (unmounted from outside?); its log:"
    sed 's/^/  /' "$pt_log"
    pt_pid=''
    rm -f "$pt_pidfile"
    die "stopping mfsd too"
  fi
  if ! kill -0 "$mfsd_pid" 2>/dev/null; then
    say "mfsd (pid $mfsd_pid) exited on its own; its log:"
    sed 's/^/  /' "$mfsd_log"
    mfsd_pid=''
    rm -f "$mfsd_pidfile"
    die "unmounting too"
  fi
done
