#!/usr/bin/env bash
# Debian packages for the printable notices (PDF via WeasyPrint: Pango, HarfBuzz subsetting,
# free CJK fonts) and, with --test, Debian's Chromium for the browser test (Playwright drives
# it; nothing is downloaded by Playwright). Installs what is missing when run as root with
# apt-get; otherwise says what to install and carries on (HTML, text and DOCX notices need
# none of it; PDF refuses with the same list).
set -uo pipefail
PACKAGES=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-noto-cjk fonts-arphic-ukai)
[ "${1:-}" = "--test" ] && PACKAGES+=(chromium)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing Debian packages: ${missing[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; then
    apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  fi
else
  echo "== Debian packages needed: ${missing[*]} (not root or no apt-get: not installed)"
fi
exit 0
