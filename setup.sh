#!/usr/bin/env bash
# One-time (and idempotent) set-up for the Agent Harness Platform on Debian/Ubuntu.
#
#   bash setup.sh
#
# Installs what this machine lacks (system packages with apt-get when run as root; otherwise it
# prints the command to run), the uv project manager, the Python environment, the sandbox user,
# the pinned mitmproxy environment for the credential proxy, the proxy's local CA, and the Kitaru
# secrets the demos use. Running it again changes nothing that is already in place.
set -euo pipefail

cd "$(dirname "$0")"
say() { printf '[setup] %s\n' "$*"; }

# --- system packages --------------------------------------------------------------------------
need_pkgs=()
command -v bwrap >/dev/null 2>&1 || need_pkgs+=(bubblewrap)
command -v socat >/dev/null 2>&1 || need_pkgs+=(socat)
command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
command -v ps >/dev/null 2>&1 || need_pkgs+=(procps)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
command -v setpriv >/dev/null 2>&1 || need_pkgs+=(util-linux)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need_pkgs+=(ca-certificates)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${need_pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
  else
    say "missing system packages: ${need_pkgs[*]}"
    say "run: sudo apt-get install -y ${need_pkgs[*]}   (then run this script again)"
    exit 1
  fi
else
  say "system packages present (bubblewrap, socat, curl, procps, iproute2)"
fi

# --- the sandbox user: bubblewrap must never run as root ------------------------------------------
if [ "$(id -u)" = 0 ]; then
  if ! id ahp-sandbox >/dev/null 2>&1; then
    say "creating the unprivileged sandbox user ahp-sandbox"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin ahp-sandbox
  else
    say "sandbox user ahp-sandbox present"
  fi
fi

# --- uv and the Python environment -------------------------------------------------------------
if ! command -v uv >/dev/null 2>&1; then
  say "installing uv"
  python3 -m pip install --quiet uv 2>/dev/null || python3 -m pip install --quiet --user uv
  command -v pyenv >/dev/null 2>&1 && pyenv rehash
  export PATH="$HOME/.local/bin:$PATH"
  if ! command -v uv >/dev/null 2>&1; then
    say "uv was installed but is not on PATH; add $(python3 -m site --user-base)/bin to PATH"
    exit 1
  fi
fi
say "syncing the Python environment (uv sync)"
uv sync --quiet

# --- mitmproxy in its own isolated environment (its pins conflict with the project's) -------------
uv run --quiet python -m agent_harness_platform.proxy warm >/dev/null
say "mitmproxy 11.0.2 ready (isolated uvx environment)"

# --- proxy CA and demo secrets (in the Kitaru store this user's runs use) ---------------------------
uv run --quiet python -m agent_harness_platform.setup_state
