#!/usr/bin/env bash
# The README's test command: installs what the tests need, then runs every test.
#
#   ./test.sh                  everything (any extra arguments go to `cargo test`)
#   ./test.sh --deps-only      install the test dependencies and stop
#
# What it installs by itself, without asking, inside the repository:
#   .ci/venv/              a Python virtual environment with .ci/requirements-test.txt
#                          (the official MCP SDK, ansible-core)
#   .ci/clients/           the npm MCP clients pinned by .ci/clients/package-lock.json
#                          (Claude Code CLI, MCP Inspector CLI, MCP conformance suite)
# System packages (pass, gnupg, OpenSSH, qemu-img, Node.js, Python venv) it installs itself only
# as root with apt-get (CI, containers), or with sudo when sudo needs no password; otherwise it
# names them with the command that installs them and exits with status 2 — never a silent skip.
set -euo pipefail
cd "$(dirname "$0")"

deps_only=0
if [ "${1:-}" = "--deps-only" ]; then
  deps_only=1
  shift
fi

phase_start=$SECONDS
phase_name=""
phase() {
  if [ -n "$phase_name" ]; then
    echo "== $phase_name took $((SECONDS - phase_start)) s (total $SECONDS s)"
  fi
  phase_name="$1"
  phase_start=$SECONDS
  [ -n "$1" ] && echo "== $1"
  return 0
}

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

phase "system packages"
# program -> Debian package, Fedora package, Homebrew formula
missing_apt=() missing_dnf=() missing_brew=() missing_programs=()
need() {
  if ! have "$1"; then
    missing_programs+=("$1")
    missing_apt+=("$2")
    missing_dnf+=("$3")
    missing_brew+=("$4")
  fi
}
need pass pass pass pass
need gpg gnupg gnupg2 gnupg
need sshd openssh-server openssh-server ""
need ssh-keygen openssh-client openssh-clients ""
need qemu-img qemu-utils qemu-img qemu
need node nodejs nodejs node
need npm npm npm ""
need python3 python3 python3 python
need git git git git
if have python3 && ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing_programs+=("python3-venv")
  missing_apt+=("python3-venv")
  missing_dnf+=("")
  missing_brew+=("")
fi

if [ ${#missing_programs[@]} -gt 0 ]; then
  apt_pkgs=$(printf '%s\n' "${missing_apt[@]}" | sort -u | xargs)
  sudo=""
  if [ "$(id -u)" != 0 ] && have sudo && sudo -n true 2>/dev/null; then
    sudo="sudo -n"
  fi
  if have apt-get && { [ "$(id -u)" = 0 ] || [ -n "$sudo" ]; }; then
    echo "installing $apt_pkgs with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    # shellcheck disable=SC2086
    $sudo apt-get install -y -qq $apt_pkgs >/dev/null
  else
    dnf_pkgs=$(printf '%s\n' "${missing_dnf[@]}" | sed '/^$/d' | sort -u | xargs)
    brew_pkgs=$(printf '%s\n' "${missing_brew[@]}" | sed '/^$/d' | sort -u | xargs)
    echo "the tests need ${missing_programs[*]}: install them with \`sudo apt-get install $apt_pkgs\` (Debian/Ubuntu), \`sudo dnf install $dnf_pkgs\` (Fedora) or \`brew install $brew_pkgs\` (macOS), then run ./test.sh again" >&2
    exit 2
  fi
fi

phase "Python test packages (.ci/venv)"
# Recreated when the requirements change; pip is not asked again otherwise.
stamp=.ci/venv/.requirements-test.txt
if [ ! -x .ci/venv/bin/python3 ] || ! cmp -s .ci/requirements-test.txt "$stamp"; then
  rm -rf .ci/venv
  python3 -m venv .ci/venv
  .ci/venv/bin/python3 -m pip install --quiet --disable-pip-version-check -r .ci/requirements-test.txt
  cp .ci/requirements-test.txt "$stamp"
fi

phase "npm MCP clients (.ci/clients)"
if ! cmp -s .ci/clients/package-lock.json .ci/clients/node_modules/.package-lock.json.ci 2>/dev/null; then
  npm ci --prefix .ci/clients --no-audit --no-fund --loglevel=error
  cp .ci/clients/package-lock.json .ci/clients/node_modules/.package-lock.json.ci
fi

if [ "$deps_only" = 1 ]; then
  phase ""
  exit 0
fi

phase "cargo test --locked"
# The venv's python3 (with the MCP SDK) and ansible-* come first on the tests' PATH.
export PATH="$PWD/.ci/venv/bin:$PATH"
status=0
cargo test --locked "$@" || status=$?
phase ""
exit $status
