#!/bin/sh
# Install logd as a system service with two roles (run as root from the repository):
#   agents' users   -> usermod -aG logd-writers USER   (may send to /run/logd/logd.sock)
#   readers         -> usermod -aG logd-readers USER   (may read /var/log/logd, logd status)
# DESTDIR=/some/root installs into a staging root instead (packaging, tests).
set -eu
cd "$(dirname "$0")/.."
root="${DESTDIR:-}"
logd_bin="${LOGD_BIN:-$(command -v logd || echo /usr/local/bin/logd)}"

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
