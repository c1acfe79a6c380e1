#!/usr/bin/env bash
# nginx-run.sh DIR PORT: fills bench/peers/nginx.conf.in for DIR and PORT and
# runs nginx in the foreground (exec, so the caller's pid is nginx's master).
set -euo pipefail
dir="$1" port="$2"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mkdir -p "$dir"
sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$here/peers/nginx.conf.in" >"$dir/nginx.conf"
exec "$(command -v nginx || echo /usr/sbin/nginx)" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log"
