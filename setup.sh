#!/bin/sh
# Sets up mamba-distill-lab on Debian 12 and runs the demo. Installs only what is missing, so it is
# safe (and quick) to run again.
#
#   sh setup.sh                 install what is missing, then `deno task lab demo`
#   sh setup.sh --install-only  install what is missing, no demo (what CI runs)
#
# Steps, one line each:
#   1. XDG_RUNTIME_DIR: a private 0700 dir when unset (Vulkan warns on every WebGPU use otherwise)
#   2. Deno 2.9.6 from npm (`npm install -g deno@2.9.6`) when deno is missing or another version
#   3. a WebGPU adapter; without a GPU, Mesa's software Vulkan (lavapipe) from apt
#   4. Jupyter from apt (Debian's python3, not a pyenv one) and the Deno kernelspec, installed by the
#      same deno binary (the kernelspec holds its absolute path); Chromium from apt for the notebooks'
#      browser test (driven by npm:playwright-core)
#   5. npm dependencies: `deno install --frozen` from deno.json + deno.lock (runs use --cached-only)
#   6. the demo (skipped with --install-only)
# Needs: Node.js + npm (for Deno), apt-get (for Vulkan, Jupyter, Chromium; sudo when not root).
set -eu

DENO_VERSION=2.9.6
SYS_PYTHON=/usr/bin/python3
ORIGINAL_PATH=$PATH

demo=1
for arg in "$@"; do
  case "$arg" in
    --install-only) demo=0 ;;
    -h | --help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup: unknown argument '$arg' (use --install-only or --help)" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")"
export DENO_NO_UPDATE_CHECK=1

now() { date +%s.%N 2>/dev/null || date +%s; }
t_step=$(now)
t_all=$t_step
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }
# done_step N TEXT: the one line for a finished step, with its time
done_step() { echo "setup: [$1/6] $2 ($(elapsed "$t_step"))"; t_step=$(now); }
fail() { echo "setup: FAILED: $*" >&2; exit 1; }

SUDO=
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; fi
fi
apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || fail "apt-get not found: install $* by hand (Debian 12 packages)"
  if [ "$(id -u)" != 0 ] && [ -z "$SUDO" ]; then fail "need root or sudo to apt-get install $*"; fi
  if [ "$apt_updated" = 0 ]; then
    echo "setup:       apt-get update" >&2
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null >&2 || fail "apt-get update"
    apt_updated=1
  fi
  echo "setup:       apt-get install -y $*" >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" </dev/null >&2 \
    || fail "apt-get install $*"
}

# 1. XDG_RUNTIME_DIR --------------------------------------------------------------------------
if [ -n "${XDG_RUNTIME_DIR:-}" ] && [ -d "$XDG_RUNTIME_DIR" ] && [ -w "$XDG_RUNTIME_DIR" ]; then
  done_step 1 "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR (already set)"
else
  XDG_RUNTIME_DIR=${TMPDIR:-/tmp}/runtime-$(id -u)
  if [ -e "$XDG_RUNTIME_DIR" ] && { [ ! -d "$XDG_RUNTIME_DIR" ] || [ ! -O "$XDG_RUNTIME_DIR" ]; }; then
    XDG_RUNTIME_DIR=$(mktemp -d) || fail "cannot create a directory for XDG_RUNTIME_DIR"
  fi
  mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR" || fail "cannot create $XDG_RUNTIME_DIR"
  export XDG_RUNTIME_DIR
  done_step 1 "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR (0700; set it in your shell too to silence Vulkan)"
fi

# 2. Deno -------------------------------------------------------------------------------------
deno_version() { "$1" --version 2>/dev/null | awk 'NR == 1 { print $2 }'; }
DENO=$(command -v deno 2>/dev/null || true)
if [ -n "$DENO" ] && [ "$(deno_version "$DENO")" = "$DENO_VERSION" ]; then
  done_step 2 "deno $DENO_VERSION at $DENO (already installed)"
else
  was=${DENO:+$(deno_version "$DENO") at $DENO}
  command -v npm >/dev/null 2>&1 || fail "deno $DENO_VERSION needs npm (Node.js) to install: apt-get install nodejs npm"
  npm_prefix=$(npm prefix -g) || fail "npm prefix -g"
  npm_sudo=
  if [ ! -w "$npm_prefix/lib" ] && [ ! -w "$npm_prefix" ]; then npm_sudo=$SUDO; fi
  echo "setup:       npm install -g deno@$DENO_VERSION" >&2
  $npm_sudo npm install -g --no-audit --no-fund "deno@$DENO_VERSION" </dev/null >&2 \
    || fail "npm install -g deno@$DENO_VERSION"
  # npm's global bin may not be on PATH, or another deno may come first: use npm's one here
  PATH="$npm_prefix/bin:$PATH"
  export PATH
  hash -r 2>/dev/null || true
  DENO=$(command -v deno 2>/dev/null || true)
  [ -n "$DENO" ] && [ "$(deno_version "$DENO")" = "$DENO_VERSION" ] \
    || fail "deno $DENO_VERSION not found after npm install -g (looked in $npm_prefix/bin)"
  done_step 2 "deno $DENO_VERSION installed at $DENO${was:+ (was $was)}"
  case ":$ORIGINAL_PATH:" in *":$npm_prefix/bin:"*) ;; *)
    echo "setup:       note: add $npm_prefix/bin to PATH in your shell" >&2 ;;
  esac
fi
DENO=$(readlink -f "$DENO")

# 3. WebGPU adapter ---------------------------------------------------------------------------
# Vulkan only: Deno's GL backend (Mesa's llvmpipe GL, found on machines without libvulkan1) cannot compile
# every kernel (the selective scan's WGSL fails there), so a GL-only adapter counts as none.
probe_gpu() {
  DENO_WEBGPU_BACKEND=vulkan timeout 120 "$DENO" eval --quiet '
    const a = await navigator.gpu?.requestAdapter();
    if (!a) Deno.exit(3);
    const i = a.info;
    console.log(i.description || i.device || i.vendor || "unnamed");
  ' 2>/dev/null
}
if adapter=$(probe_gpu); then
  done_step 3 "WebGPU adapter: $adapter (already available)"
else
  echo "setup:       no WebGPU adapter: installing Mesa's software Vulkan (lavapipe)" >&2
  apt_install mesa-vulkan-drivers libvulkan1
  adapter=$(probe_gpu) || fail "still no WebGPU adapter after installing mesa-vulkan-drivers libvulkan1 \
(try: $DENO eval 'console.log(await navigator.gpu.requestAdapter())')"
  done_step 3 "WebGPU adapter: $adapter (installed mesa-vulkan-drivers libvulkan1)"
fi

# 4. Jupyter + Deno kernelspec ----------------------------------------------------------------
jupyter_ok() {
  [ -x "$SYS_PYTHON" ] && "$SYS_PYTHON" -c 'import nbclient, nbconvert' 2>/dev/null \
    && [ -x /usr/bin/jupyter-notebook ]
}
jupyter_note="already installed"
if ! jupyter_ok; then
  apt_install jupyter-notebook python3-nbconvert python3-nbclient
  jupyter_ok || fail "Jupyter still incomplete after apt-get install (need $SYS_PYTHON with nbclient, nbconvert)"
  jupyter_note="installed jupyter-notebook python3-nbconvert python3-nbclient"
fi
# argv[0] of the kernelspec named "deno", as Debian's jupyter_client finds it; empty when absent
kernel_deno=$("$SYS_PYTHON" -c '
from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel
try:
    print(KernelSpecManager().get_kernel_spec("deno").argv[0])
except NoSuchKernel:
    pass
' 2>/dev/null || true)
if [ -n "$kernel_deno" ] && [ "$(readlink -f "$kernel_deno" 2>/dev/null)" = "$DENO" ]; then
  kernel_note="kernelspec 'deno' already uses $DENO"
else
  "$DENO" jupyter --install --force </dev/null >&2 || fail "$DENO jupyter --install --force"
  kernel_deno=$("$SYS_PYTHON" -c '
from jupyter_client.kernelspec import KernelSpecManager
print(KernelSpecManager().get_kernel_spec("deno").argv[0])' 2>/dev/null || true)
  [ "$(readlink -f "$kernel_deno" 2>/dev/null)" = "$DENO" ] \
    || fail "the Deno kernelspec does not point at $DENO after deno jupyter --install (it has '$kernel_deno')"
  kernel_note="kernelspec 'deno' installed for $DENO"
fi
# Chromium: the browser test opens every notebook in /usr/bin/chromium (headless) via playwright-core
if [ -x /usr/bin/chromium ]; then
  chromium_note="chromium already installed"
else
  t_chromium=$(now)
  apt_install chromium
  [ -x /usr/bin/chromium ] || fail "/usr/bin/chromium missing after apt-get install chromium"
  chromium_note="installed chromium in $(elapsed "$t_chromium")"
fi
done_step 4 "Jupyter: $jupyter_note; $kernel_note; $chromium_note"

# 5. npm dependencies -------------------------------------------------------------------------
"$DENO" install --frozen </dev/null >&2 \
  || fail "deno install --frozen (deno.lock out of date with deno.json? run 'deno install' and keep deno.lock)"
done_step 5 "dependencies: deno install --frozen (node_modules/ from deno.json + deno.lock)"

# 6. demo -------------------------------------------------------------------------------------
if [ "$demo" = 0 ]; then
  echo "setup: [6/6] demo skipped (--install-only); run it with: deno task lab demo"
  echo "setup: done in $(elapsed "$t_all")"
  exit 0
fi
[ -f lib/cli/main.ts ] || fail "lib/cli/main.ts is missing: the CLI is not in this checkout yet"
echo "setup: [6/6] demo: deno task lab demo (bundled teacher data/brown-llama-6m)"
"$DENO" task lab demo || fail "the demo (deno task lab demo) exited with an error"
echo "setup: done in $(elapsed "$t_all")"
