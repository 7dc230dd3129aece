#!/usr/bin/env bash
# Debian packages the integration tests drive for real (SPEC §6). Needs root; CI runs as root.
# Postfix is preseeded to "No configuration" so installing it starts no mail server on port 25:
# the tests run private Postfix instances on loopback ports of their own.
set -euo pipefail
PACKAGES=(postfix libsasl2-modules msmtp git git-email swaks nsd ca-certificates neomutt
  libauthen-sasl-perl libio-socket-ssl-perl libmailtools-perl nginx chromium fonts-noto-cjk
  dovecot-imapd systemd)  # systemd: systemd-analyze checks the OAuth2 refresher's units (not run as PID 1)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${PACKAGES[*]})"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "system packages missing: ${missing[*]} — run as root: sudo bash $0" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "msmtp msmtp/apparmor boolean false" | debconf-set-selections
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Debian's nginx and Dovecot packages start servers (port 80; IMAP on 143 and 993) where an init
# system runs; the tests start their own instances on loopback ports and never use the system ones.
for pair in nginx:nginx dovecot-core:dovecot; do
  package=${pair%%:*} service=${pair#*:}
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || continue
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now "$service" "$service.socket" >/dev/null 2>&1 || true
  else
    service "$service" stop >/dev/null 2>&1 || true
    update-rc.d "$service" disable >/dev/null 2>&1 || true
  fi
done
