#!/usr/bin/env bash
# ensure-deb.sh PACKAGE...: installs the Debian packages a make target needs
# (the CA bundle of `make image`, podman and runc of the e2e image scenario)
# when they are missing, so that a fresh machine or CI clone needs no manual
# step. Installed packages cost one dpkg-query.
#
# Where apt-get itself is unavailable (another distribution), it prints a
# loud warning and exits 0: the tests that need the packages then say what is
# missing. Not being root where apt-get exists is an error.
set -euo pipefail

missing=()
for pkg in "$@"; do
	if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$pkg")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
	cat >&2 <<MSG
################################################################################
WARNING: ${missing[*]} not installed and apt-get is not available here.
Install the equivalent packages with this system's package manager; the
targets and tests that need them fail or skip until then.
################################################################################
MSG
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "hack/ensure-deb.sh: ${missing[*]} missing; run as root or: sudo apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "hack/ensure-deb.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >&2
apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
