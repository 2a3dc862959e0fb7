#!/bin/sh
# Install logd as a system service with two roles (run as root from the repository; `make install`):
#   agents' users   -> usermod -aG logd-writers USER   (may send to /run/logd/logd.sock)
#   readers         -> usermod -aG logd-readers USER   (may read /var/log/logd, logd status)
# logd goes into a venv of its own, /opt/logd (LOGD_VENV), linked as /usr/local/bin/logd: Debian 12
# and Ubuntu refuse pip installs into the system Python (PEP 668, "externally-managed-environment").
# LOGD_BIN=/path/to/logd uses a logd installed otherwise instead (pipx with PIPX_HOME under /opt).
# LOGD_EXTRAS: the extras installed into the venv (default "all"; "" for the core install).
# DESTDIR=/some/root installs into a staging root instead (packaging, tests).
set -eu
cd "$(dirname "$0")/.."
root="${DESTDIR:-}"
root="${root%/}"
venv="${LOGD_VENV:-/opt/logd}"
logd_bin="${LOGD_BIN:-$venv/bin/logd}"
extras="${LOGD_EXTRAS-all}"

fail() {
  echo "install.sh: $*" >&2
  exit 1
}

# The unit runs logd sandboxed: a path the sandbox hides or the service user cannot open makes a
# service that cannot start, so it is refused here, before anything is installed.
hidden_by_unit() {  # PATH -> the setting of logd.service that hides it, or nothing
  case "$1" in
    /home|/home/*|/root|/root/*|/run/user|/run/user/*)
      grep -q '^ProtectHome=yes' systemd/logd.service && echo "ProtectHome=yes (/home, /root and /run/user are empty to it)" ;;
    /tmp|/tmp/*|/var/tmp|/var/tmp/*)
      grep -q '^PrivateTmp=yes' systemd/logd.service && echo "PrivateTmp=yes (it gets a /tmp and /var/tmp of its own)" ;;
  esac
  return 0
}
closed_to_service_user() {  # PATH (as staged under $root) -> the first folder user logd cannot pass
  dir="$1"
  while [ -n "$dir" ] && [ "$dir" != "/" ]; do
    if [ -e "$root$dir" ] && [ "$(( $(stat -c '0%a' "$root$dir") & 1 ))" = 0 ]; then
      echo "$dir"
      return 0
    fi
    dir="$(dirname "$dir")"
  done
}
check_service_path() {  # WHAT PATH
  case "$2" in /*) ;; *) fail "$1 $2 is not an absolute path; the unit needs one" ;; esac
  why="$(hidden_by_unit "$2")"
  [ -z "$why" ] || fail "refusing $1 $2: logd.service runs with $why, so the service could not run it; install under /opt or /usr/local (the default venv is /opt/logd)"
  closed="$(closed_to_service_user "$(dirname "$2")")"
  [ -z "$closed" ] || fail "refusing $1 $2: logd.service runs as user logd, who cannot enter $closed (mode $(stat -c '%a' "$root$closed")); chmod o+x it or install elsewhere"
}

check_service_path "the venv" "$venv"
check_service_path "the logd binary" "$logd_bin"

if [ -z "${LOGD_BIN:-}" ]; then
  python3 -c 'import ensurepip, venv' 2>/dev/null || fail "python3-venv is missing: apt-get install python3-venv"
  echo "install.sh: installing logd into the venv $root$venv"
  [ -x "$root$venv/bin/python" ] || python3 -m venv "$root$venv"
  "$root$venv/bin/python" -m pip install --quiet --disable-pip-version-check ".${extras:+[$extras]}"
  if [ -n "$root" ]; then  # staged: the venv's scripts must name the python they will run from
    grep -rlF "$root$venv" "$root$venv/bin" "$root$venv/pyvenv.cfg" | while read -r script; do
      sed -i "s|$root$venv|$venv|g" "$script"
    done
  fi
  mkdir -p "$root/usr/local/bin"
  ln -sfn "$venv/bin/logd" "$root/usr/local/bin/logd"
fi

install -D -m 0644 systemd/logd.sysusers "$root/usr/lib/sysusers.d/logd.conf"
if [ -z "$root" ] && command -v systemd-sysusers >/dev/null; then
  systemd-sysusers /usr/lib/sysusers.d/logd.conf
elif [ -n "$root" ]; then
  mkdir -p "$root/etc"
  systemd-sysusers --root="$root" "$root/usr/lib/sysusers.d/logd.conf"
else  # no systemd-sysusers: the same users with useradd
  getent group logd-writers >/dev/null || groupadd --system logd-writers
  getent group logd-readers >/dev/null || groupadd --system logd-readers
  id logd >/dev/null 2>&1 || useradd --system --gid logd-readers --home-dir /var/lib/logd \
    --no-create-home --shell /usr/sbin/nologin logd
fi
install -D -m 0644 systemd/logd.service "$root/etc/systemd/system/logd.service"
install -D -m 0644 systemd/logd.socket "$root/etc/systemd/system/logd.socket"
sed -i "s|^ExecStart=[^ ]*|ExecStart=$logd_bin|" "$root/etc/systemd/system/logd.service"
[ -e "$root/etc/logd/agentflow.toml" ] || install -D -m 0644 config/production.toml "$root/etc/logd/agentflow.toml"
install -D -m 0644 README.md "$root/usr/share/doc/logd/README.md"
if [ -d build/man ]; then  # made by `make man`
  install -D -m 0644 build/man/logd.1 "$root/usr/share/man/man1/logd.1"
fi
if [ -d build/completion ]; then
  install -D -m 0644 build/completion/logd.bash "$root/usr/share/bash-completion/completions/logd"
  install -D -m 0644 build/completion/_logd "$root/usr/share/zsh/vendor-completions/_logd"
fi
echo "installed; now: systemctl daemon-reload && systemctl enable --now logd.socket logd.service"
