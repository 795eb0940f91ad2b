#!/usr/bin/env bash
# The root Dockerfile checked without a Docker engine:
#  - two stages on Debian 12 (build: tools/install-deps.sh and a Release
#    build of quantd and quantctl without tests/benchmarks; runtime: copies
#    both binaries, non-root USER, EXPOSE 50051 9464, VOLUME, HEALTHCHECK,
#    CMD quantd serve on the volume);
#  - every package the runtime stage installs exists in Debian's apt
#    (apt-cache policy shows a candidate);
#  - every shared library `ldd` resolves for the built quantd and quantctl
#    belongs (dpkg -S) to a runtime package, to one of their dependencies
#    (apt-cache depends --recurse), or to an Essential package of the base
#    image: the runtime stage can load both binaries;
#  - the HEALTHCHECK script passes against a real quantd serve with a tokens
#    file and fails once it is gone.
#   tests/deploy/dockerfile_check.sh SOURCE_ROOT QUANTD_BIN QUANTCTL_BIN
set -euo pipefail
root=$1 quantd=$2 quantctl=$3
for tool in apt-cache dpkg ldd; do
  command -v $tool >/dev/null || { echo "SKIP: $tool is not available (not a Debian system)"; exit 77; }
done
dockerfile=$root/Dockerfile
fail() { echo "FAIL: $*"; exit 1; }

# Dockerfile instructions with continuations joined.
joined=$(sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile" | grep -v '^\s*#')
froms=$(grep -E '^FROM ' <<<"$joined")
[[ $(wc -l <<<"$froms") -eq 2 ]] || fail "expected 2 stages, got: $froms"
grep -qE '^FROM debian:bookworm AS build$' <<<"$froms" || fail "build stage is not debian:bookworm AS build"
grep -qE '^FROM debian:bookworm(-slim)? AS runtime$' <<<"$froms" || fail "runtime stage is not debian:bookworm"
build=$(sed -n '/^FROM .* AS build$/,/^FROM /p' <<<"$joined")
runtime=$(sed -n '/^FROM .* AS runtime$/,$p' <<<"$joined")
grep -q 'RUN tools/install-deps.sh' <<<"$build" || fail "build stage does not run tools/install-deps.sh"
for want in -DCMAKE_BUILD_TYPE=Release -DQUANTD_BUILD_TESTS=OFF -DQUANTD_BUILD_BENCHMARKS=OFF '--target quantd quantctl'; do
  grep -qe "$want" <<<"$build" || fail "build stage lacks $want"
done
for opt in QUANTD_BUILD_TESTS QUANTD_BUILD_BENCHMARKS; do
  grep -q "option($opt " "$root/CMakeLists.txt" || fail "CMakeLists.txt has no option $opt"
done
grep -q 'COPY --from=build /src/build/server/quantd ' <<<"$runtime" || fail "runtime does not copy quantd"
grep -q 'COPY --from=build /src/build/client/quantctl ' <<<"$runtime" || fail "runtime does not copy quantctl"
grep -qE '^USER [1-9][0-9]*' <<<"$runtime" || fail "runtime USER is not a non-root uid"
grep -qE '^EXPOSE 50051 9464$' <<<"$runtime" || fail "EXPOSE 50051 9464"
grep -qE '^VOLUME /var/lib/quantd$' <<<"$runtime" || fail "VOLUME /var/lib/quantd"
grep -qE '^HEALTHCHECK .*CMD \["/usr/local/bin/quantd-healthcheck"\]' <<<"$runtime" || fail "HEALTHCHECK"
grep -qE '^CMD \["quantd", "serve", "--data-dir", "/var/lib/quantd",' <<<"$runtime" || fail "CMD quantd serve --data-dir /var/lib/quantd"
for want in '"--metrics-address", "0.0.0.0:9464"' '"--tokens-file", "/etc/quantd/tokens"' '"--listen-address", "0.0.0.0"'; do
  grep -qF "$want" <<<"$runtime" || fail "CMD lacks $want"
done
grep -q -- '-DCMAKE_BUILD_TYPE' <<<"$runtime" && fail "the runtime stage builds"
grep -qE -- '-dev( |$)' <<<"$runtime" && fail "the runtime stage installs -dev packages"

# The runtime stage's packages: the words after "apt-get install ... -y ..." up to "&&".
mapfile -t pkgs < <(grep -o 'apt-get install[^&]*' <<<"$runtime" | tr ' ' '\n' |
  grep -vE '^(apt-get|install|-.*|)$' | sort -u)
((${#pkgs[@]} >= 5)) || fail "runtime packages: ${pkgs[*]}"
for p in "${pkgs[@]}"; do
  cand=$(apt-cache policy "$p" 2>/dev/null | sed -n 's/^ *Candidate: //p')
  [[ -n "$cand" && "$cand" != "(none)" ]] || fail "runtime package $p is not in apt (apt-cache policy)"
done
echo "runtime packages (${#pkgs[@]}, all in apt): ${pkgs[*]}"

# What those packages bring: their recursive Depends/PreDepends, plus the
# Essential packages every Debian image has.
apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances "${pkgs[@]}" 2>/dev/null |
  sed -n 's/^ *\(Pre\)\?Depends: <\?\([^>]*\)>\?$/\2/p; /^[a-z0-9]/p' |
  sed 's/:any$//' | sort -u >"${TMPDIR:-/tmp}/quantd-dockerfile-closure.$$"
trap 'rm -f "${TMPDIR:-/tmp}/quantd-dockerfile-closure.$$"' EXIT
closure="${TMPDIR:-/tmp}/quantd-dockerfile-closure.$$"
essential=$(dpkg-query -W -f='${Package} ${Essential}\n' | awk '$2 == "yes" {print $1}')
# One dpkg -S for every library (its path, its resolved path, and the /usr
# twin of a merged-/usr path): one call per library took 36 s on an idle
# machine and timed out on a loaded one.
mapfile -t libs < <(ldd "$quantd" "$quantctl" | awk '$3 ~ /^\// {print $3}' | sort -u)
query=()
for lib in "${libs[@]}"; do query+=("$lib" "$(readlink -f "$lib")" "/usr$lib"); done
declare -A owner_of
while IFS= read -r line; do
  [[ "$line" == *": /"* ]] || continue
  pkg=${line%%: /*}; path=/${line#*: /}
  owner_of[$path]=${pkg%%:*}
done < <(dpkg -S "${query[@]}" 2>/dev/null)
checked=0
for lib in "${libs[@]}"; do
  owner=${owner_of[$lib]:-${owner_of[$(readlink -f "$lib")]:-${owner_of[/usr$lib]:-}}}
  [[ -n "$owner" ]] || fail "$lib belongs to no Debian package"
  if printf '%s\n' "${pkgs[@]}" | grep -qx "$owner" || grep -qx "$owner" "$closure" ||
     grep -qx "$owner" <<<"$essential"; then
    checked=$((checked + 1))
  else
    fail "$lib is in $owner, which the runtime stage does not install"
  fi
done
echo "ldd: $checked libraries of quantd and quantctl covered by the runtime packages"

# The HEALTHCHECK script against a real server with a tokens file.
work=$(mktemp -d)
server=""
cleanup() { [[ -n "$server" ]] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$work" "$closure"; }
trap cleanup EXIT
mkdir "$work/bin"; ln -s "$(readlink -f "$quantctl")" "$work/bin/quantctl"
printf '# test\nt1 %s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$work/tokens"
source "$(dirname "$0")/../service/serve_lib.sh"
quantd_start "$quantd" "$work" --data-dir "$work/data" \
  --listen-address 127.0.0.1 --tokens-file "$work/tokens" ||
  { cat "$work/serve.err"; fail "quantd did not start"; }
hc() { PATH="$work/bin:$PATH" QUANTD_HEALTH_SERVER=$address QUANTD_TOKENS_FILE=$work/tokens \
       "$root/deploy/docker/healthcheck.sh"; }
hc || fail "healthcheck failed against a running quantd"
kill "$server"; wait "$server" 2>/dev/null || true; server=""
if hc 2>/dev/null; then fail "healthcheck passed with quantd stopped"; fi
echo "PASS: Dockerfile stages, runtime packages in apt, ldd coverage, healthcheck against a real quantd"
