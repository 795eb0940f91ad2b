#!/bin/sh
# Container health of `quantd serve`: one real gRPC call through quantctl.
# Healthy when quantd answers: quantctl exit 0, or 2 (the server answered
# with an error such as UNAUTHENTICATED). Unhealthy on 3 (unreachable or
# UNAVAILABLE), 5 or a timeout.
#   QUANTD_HEALTH_SERVER  address (default 127.0.0.1:50051)
#   QUANTD_TOKENS_FILE    tokens file whose first token is used
#                         (default /etc/quantd/tokens; none: no token)
#   QUANTD_HEALTH_TLS_CA  PEM CA: check over TLS (the server certificate must
#                         be valid for the address's host)
server=${QUANTD_HEALTH_SERVER:-127.0.0.1:50051}
tokens=${QUANTD_TOKENS_FILE:-/etc/quantd/tokens}
token=""
if [ -r "$tokens" ]; then
  token=$(awk '$1 !~ /^#/ && NF >= 2 { print $2; exit }' "$tokens")
fi
set -- --server "$server"
# The token goes by environment, not argv (not visible in ps).
[ -n "$token" ] && export QUANTD_TOKEN="$token"
[ -n "${QUANTD_HEALTH_TLS_CA:-}" ] && set -- "$@" --tls-ca "$QUANTD_HEALTH_TLS_CA"
quantctl=$(command -v quantctl || echo /usr/local/bin/quantctl)
timeout 8 "$quantctl" "$@" jobs list --page-size 1 >/dev/null 2>&1
rc=$?
case $rc in
  0|2) exit 0 ;;
  *) echo "quantd-healthcheck: quantctl exit $rc for $server" >&2; exit 1 ;;
esac
