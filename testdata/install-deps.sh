#!/usr/bin/env bash
# Installs the Debian packages that dvpc's tests call, when any is missing.
# Used by `make test` and .ci/run; safe to run again.
set -euo pipefail
pkgs=(skopeo docker-registry openssh-client python3 attr git mount util-linux xorriso genisoimage gdisk dosfstools mtools chromium restic borgbackup)
need=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${need[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
