#!/usr/bin/env bash
# Installs what the tests need outside Python, idempotently:
#  - Debian: chromium + fonts (card rendering), postgresql (state store on a real server)
#  - npm: the adaptivecards renderer under tests/render/
# Runs apt-get only when something is missing; needs root (or sudo) for that.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)

if [ ${#need[@]} -gt 0 ]; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "install_system_deps: missing ${need[*]} and not root; install them and re-run" >&2; exit 1
    fi
  fi
  echo "install_system_deps: installing ${need[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ -f tests/render/package.json ] && [ ! -d tests/render/node_modules/adaptivecards ]; then
  echo "install_system_deps: npm ci (tests/render)"
  npm ci --prefix tests/render --no-audit --no-fund --loglevel=error
fi
