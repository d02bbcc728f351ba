#!/usr/bin/env bash
# Installs the Debian packages that dvpc's tests call, when any is missing.
# Used by `make test` and .ci/run; safe to run again.
set -euo pipefail

# crane, go-containerregistry's command, is not packaged in Debian: it comes
# from the Go module proxy, into $(go env GOPATH)/bin.
crane_version=v0.22.1
if ! command -v crane >/dev/null && [ ! -x "$(go env GOPATH)/bin/crane" ]; then
  go install "github.com/google/go-containerregistry/cmd/crane@${crane_version}"
fi

pkgs=(skopeo docker-registry cpio openssh-client python3 attr git mount util-linux xorriso genisoimage gdisk dosfstools mtools chromium restic borgbackup zsh fish)
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
