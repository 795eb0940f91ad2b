# Shared by the integration scripts (source it after serve_lib.sh; bash):
# a real PostgreSQL for one test, in a temporary folder, on a free loopback
# port, trust authentication. PostgreSQL refuses to run as root, so as root
# it runs as Debian's `postgres` user.
#
#   pg_start "$work" || fail "PostgreSQL did not start"   # sets $pg_url
#   pg_sql "SELECT count(*) FROM jobs"                    # one value
#   pg_restart                                            # crash + start
#   pg_stop                                               # in the cleanup
pg_start() {
  pg_dir=$1/pg
  command -v pg_config >/dev/null ||
    { echo "pg_config missing: install libpq-dev and postgresql (tools/install-deps.sh)"; return 1; }
  pg_bin=$(pg_config --bindir)
  pg_as=()
  if [[ $(id -u) == 0 ]]; then
    chown postgres "$1"
    pg_as=(runuser -u postgres --)
  fi
  pg_port=$(free_port)
  "${pg_as[@]}" "$pg_bin/initdb" -D "$pg_dir" -U postgres --auth=trust --no-sync \
    >"$1/initdb.log" 2>&1 || { cat "$1/initdb.log"; return 1; }
  pg_ctl_start || return 1
  "$pg_bin/psql" -X -q "postgresql://postgres@127.0.0.1:$pg_port/postgres" \
    -c "CREATE DATABASE quantd" || return 1
  pg_url="postgresql://postgres@127.0.0.1:$pg_port/quantd"
}
pg_ctl_start() {
  "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir" -l "$pg_dir.log" -w -t 120 \
    -o "-p $pg_port -k '$(dirname "$pg_dir")' -c listen_addresses=127.0.0.1" start >/dev/null
}
pg_restart() {
  "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir" -m immediate -w stop >/dev/null && pg_ctl_start
}
pg_stop() {
  [[ -n "${pg_dir:-}" ]] &&
    "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir" -m immediate stop >/dev/null 2>&1
  return 0
}
pg_sql() { "$pg_bin/psql" -X -q -t -A "$pg_url" -c "$1"; }
