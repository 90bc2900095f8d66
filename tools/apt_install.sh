#!/usr/bin/env bash
# Install Debian packages the project needs (promtool for the alert rules, ...), skipping
# those already installed. Dev and CI machines run as root, so apt-get works as it is;
# the package lists are refreshed once when the first attempt cannot find a package.
set -euo pipefail
missing=()
for package in "$@"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -qq --no-install-recommends "${missing[@]}" \
  || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; }
